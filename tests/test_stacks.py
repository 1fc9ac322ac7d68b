"""Stacks: both layouts, dates from descriptions / tags / file names, units, no data, grids, windows."""

import datetime as dt

import numpy as np
import pytest
from helpers import ORIGIN, dates_from, write_multiband, write_raster
from rasterio.transform import from_origin
from rasterio.windows import Window

from slgt2_cli.errors import InputError
from slgt2_cli.io.stacks import open_stack, parse_band_label, parse_date

D0 = dt.date(2021, 3, 1)


def _values(t=3, c=2, h=6, w=5, seed=0):
    return np.random.default_rng(seed).uniform(-25, -5, (t, c, h, w)).astype(np.float32)


def test_parse_dates_and_labels():
    assert parse_date("S1A_20210307T051234_x.tif") == dt.date(2021, 3, 7)
    assert parse_date("scene_2021-03-07.tif") == dt.date(2021, 3, 7)
    assert parse_date("20211345.tif") is None
    assert parse_band_label("VH_2021-03-07") == ("VH", dt.date(2021, 3, 7))
    assert parse_band_label("NDVI_2015-07-11") == ("NDVI", dt.date(2015, 7, 11))
    assert parse_band_label("VV") == ("VV", None)


def test_multiband_descriptions(tmp_path):
    values = _values()
    dates = dates_from(D0, 3)
    path = write_multiband(tmp_path / "s.tif", values, dates)
    with open_stack(path) as stack:
        assert stack.dates == dates and stack.polarisations == ["VV", "VH"]
        assert (stack.num_dates, stack.num_channels, stack.units) == (3, 2, "db")
        assert stack.grid.shape == (6, 5) and stack.grid.crs.to_epsg() == 32633
        np.testing.assert_array_equal(stack.read(), values)
        np.testing.assert_array_equal(stack.read(Window(1, 2, 3, 4)), values[:, :, 2:6, 1:4])


def test_multiband_bands_out_of_date_order_are_sorted(tmp_path):
    values = _values(t=2)
    late, early = dt.date(2021, 5, 1), dt.date(2021, 4, 1)
    names = [f"VV_{late}", f"VH_{late}", f"VH_{early}", f"VV_{early}"]
    stored = np.stack([values[1, 0], values[1, 1], values[0, 1], values[0, 0]])
    path = write_raster(tmp_path / "s.tif", stored, descriptions=names)
    with open_stack(path) as stack:
        assert stack.dates == [early, late]
        np.testing.assert_array_equal(stack.read(), values)


def test_dates_from_band_tags(tmp_path):
    values = _values(t=2)
    dates = dates_from(D0, 2)
    tags = [{"NAME": f"{p}_{d}"} for d in dates for p in ("VV", "VH")]
    path = write_raster(tmp_path / "tagged.tif", values.reshape(4, 6, 5), band_tags=tags)
    with open_stack(path) as stack:
        assert stack.dates == dates and stack.polarisations == ["VV", "VH"]
    tags = [{"DATE": d.strftime("%Y%m%d"), "POLARISATION": p} for d in dates for p in ("VV", "VH")]
    path = write_raster(tmp_path / "tagged2.tif", values.reshape(4, 6, 5), band_tags=tags)
    with open_stack(path) as stack:
        assert stack.dates == dates and stack.polarisations == ["VV", "VH"]


def test_directory_layout_dates_from_file_names(tmp_path):
    values = _values(t=3)
    dates = [dt.date(2021, 3, 1), dt.date(2021, 3, 13), dt.date(2021, 3, 25)]
    names = ["S1A_20210313_x.tif", "2021-03-01_S1.tif", "s1_20210325.tiff"]
    order = [1, 0, 2]
    for name, t in zip(names, order):
        write_raster(tmp_path / "stack" / name, values[t], descriptions=["VV", "VH"])
    with open_stack(tmp_path / "stack") as stack:
        assert stack.dates == dates and stack.polarisations == ["VV", "VH"] and stack.num_dates == 3
        np.testing.assert_array_equal(stack.read(), values)
        np.testing.assert_array_equal(stack.read(Window(0, 0, 2, 2)), values[:, :, :2, :2])


def test_directory_with_mismatched_grid_names_the_file(tmp_path):
    write_raster(tmp_path / "stack" / "a_20210301.tif", _values(t=1)[0])
    shifted = from_origin(ORIGIN[0] + 10, ORIGIN[1], 10.0, 10.0)
    write_raster(tmp_path / "stack" / "b_20210313.tif", _values(t=1)[0], transform=shifted)
    with pytest.raises(InputError, match=r"b_20210313\.tif.*grid"):
        open_stack(tmp_path / "stack")
    write_raster(tmp_path / "other" / "a_20210301.tif", _values(t=1)[0])
    write_raster(tmp_path / "other" / "b_20210313.tif", _values(t=1, h=7)[0])
    with pytest.raises(InputError, match=r"b_20210313\.tif"):
        open_stack(tmp_path / "other")


def test_directory_file_without_date(tmp_path):
    write_raster(tmp_path / "stack" / "nodate.tif", _values(t=1)[0])
    with pytest.raises(InputError, match="nodate.tif"):
        open_stack(tmp_path / "stack")


def test_band_without_date_among_dated_bands(tmp_path):
    path = write_raster(tmp_path / "s.tif", _values(t=1)[0], descriptions=["VV_2021-03-01", "VH"])
    with pytest.raises(InputError, match="band 2 has no date"):
        open_stack(path)


def test_linear_power_is_detected_and_converted_to_db(tmp_path):
    db = _values()
    path = write_multiband(tmp_path / "lin.tif", (10 ** (db / 10)).astype(np.float32), dates_from(D0, 3))
    with open_stack(path) as stack:
        assert stack.units == "linear" and stack.model_units == "db"
        np.testing.assert_allclose(stack.read(), db, atol=1e-4)
    with open_stack(path, units="dB") as stack:  # override: values taken as they are
        assert stack.units == "db"
        np.testing.assert_allclose(stack.read(), 10 ** (db / 10), rtol=1e-6)
    with pytest.raises(InputError, match="unknown units"):
        open_stack(path, units="furlongs")


def test_scaled_integers_and_declared_units(tmp_path):
    ints = (np.random.default_rng(1).integers(1, 3000, (2, 2, 4, 4))).astype(np.uint16)
    with open_stack(write_multiband(tmp_path / "i.tif", ints, dates_from(D0, 2))) as stack:
        assert stack.units == "scaled"
        np.testing.assert_array_equal(stack.read(), ints.astype(np.float32))
    lin = (10 ** (_values(t=2) / 10)).astype(np.float32)
    with open_stack(write_multiband(tmp_path / "d.tif", lin, dates_from(D0, 2), tags={"UNITS": "dB"})) as stack:
        assert stack.units == "db"  # the file's own statement wins over detection


def test_nan_nodata_and_all_zero_are_no_data(tmp_path):
    values = _values(t=2)
    values[0, 0, 0, 0] = np.nan          # NaN in one channel: the whole observation is no data
    values[1, 1, 1, 1] = -9999.0         # nodata value
    values[0, :, 2, 2] = 0.0             # zero in every band
    values[1, 0, 3, 3] = 0.0             # zero in one band only: valid
    path = write_multiband(tmp_path / "s.tif", values, dates_from(D0, 2), nodata=-9999.0)
    with open_stack(path) as stack:
        out = stack.read()
    assert np.isnan(out[0, :, 0, 0]).all() and np.isnan(out[1, :, 1, 1]).all()
    assert np.isnan(out[0, :, 2, 2]).all()
    assert out[1, 0, 3, 3] == 0.0 and not np.isnan(out[1, :, 3, 3]).any()
    assert np.isnan(out).sum() == 6


def test_undescribed_bands_and_channel_override(tmp_path):
    path = write_raster(tmp_path / "plain.tif", _values(t=3).reshape(6, 6, 5))
    with open_stack(path) as stack:
        assert stack.dates is None and stack.num_channels == 1 and stack.num_dates == 6
    with open_stack(path, channels=2) as stack:
        assert stack.num_channels == 2 and stack.num_dates == 3
    with pytest.raises(InputError, match="do not split"):
        open_stack(path, channels=4)


def test_missing_and_unreadable(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_stack(tmp_path / "nope.tif")
    (tmp_path / "junk.tif").write_text("not a tiff")
    with pytest.raises(InputError, match="junk.tif"):
        open_stack(tmp_path / "junk.tif")


def test_band_description_that_is_not_utf8_is_a_clear_error(tmp_path):
    path = write_multiband(tmp_path / "s.tif", _values(), dates_from(D0, 3))
    data = path.read_bytes()
    assert data.count(b"VH_") == 3
    path.write_bytes(data.replace(b"VH_", b"\x80H_", 1))  # a Latin-1 byte in band 2's description
    with pytest.raises(InputError, match=r"s\.tif: its band descriptions or tags are not UTF-8 text"):
        open_stack(path)


def test_select_reorders_channels_by_name(tmp_path):
    values = _values()
    with open_stack(write_multiband(tmp_path / "s.tif", values, dates_from(D0, 3))) as stack:
        swapped = stack.select(["vh", "VV"])
        assert swapped.polarisations == ["VH", "VV"]
        np.testing.assert_array_equal(swapped.read(), values[:, ::-1])
        with pytest.raises(InputError, match="has no HH band"):
            stack.select(["HH"])
