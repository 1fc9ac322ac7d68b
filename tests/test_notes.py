"""Library warnings become our notes: one line per command run naming the first file; others pass; --debug raw."""

from __future__ import annotations

import warnings

import pytest
from rasterio.errors import NotGeoreferencedWarning

from slgt2_cli.cli.notes import library_warnings
from slgt2_cli.errors import InputError, MissingFileError


def _open(fp: str) -> None:  # as rasterio.open(fp) warns
    warnings.warn("Dataset has no geotransform, gcps, or rpcs. The identity matrix will be returned.",
                  NotGeoreferencedWarning, stacklevel=1)


def test_not_georeferenced_is_one_note_naming_the_first_file(capsys):
    with warnings.catch_warnings(record=True) as passed:
        warnings.simplefilter("default")
        with library_warnings():
            for name in ("a.tif", "b.tif", "a.tif"):
                _open(name)
            warnings.warn("something else", UserWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err.splitlines() == ["slgt2: note: a.tif has no georeference: maps keep pixel coordinates, areas are in pixels"]
    assert [str(w.message) for w in passed] == ["something else"]  # an unknown warning is never hidden


def test_debug_shows_the_library_warning(capsys):
    with warnings.catch_warnings(record=True) as passed:
        with library_warnings(debug=True):
            _open("a.tif")
    assert [w.category for w in passed] == [NotGeoreferencedWarning]
    assert "note" not in capsys.readouterr().err


def test_input_errors_are_pythons_own():
    with pytest.raises(ValueError, match="x.tif: bad"):
        raise InputError("bad", "x.tif")
    with pytest.raises(FileNotFoundError) as caught:
        raise MissingFileError("image stack not found", "x.tif")
    assert isinstance(caught.value, InputError) and caught.value.filename == "x.tif"
    assert str(caught.value) == "x.tif: image stack not found"
