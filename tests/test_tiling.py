"""Tile arithmetic and streaming blending: coverage, weights, band bookkeeping."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slgt2_cli.errors import InputError
from slgt2_cli.infer.tiling import WEIGHT_FLOOR, BlendAccumulator, TileGrid, blend_weights, tile_origins


@st.composite
def scenes(draw):
    tile = draw(st.integers(1, 24))
    stride = draw(st.integers(1, tile))
    height = draw(st.integers(1, 70))
    width = draw(st.integers(1, 70))
    return height, width, tile, stride


def test_tile_origins_examples():
    assert tile_origins(10, 4, 4) == [0, 4, 6]
    assert tile_origins(8, 4, 4) == [0, 4]
    assert tile_origins(3, 4, 2) == [0]
    assert tile_origins(224, 224, 200) == [0]
    assert tile_origins(500, 224, 200) == [0, 200, 276]


@pytest.mark.parametrize("tile,stride", [(0, 1), (4, 0), (4, 5), (-2, 1)])
def test_bad_tile_stride(tile, stride):
    with pytest.raises(InputError):
        tile_origins(10, tile, stride)


@given(st.integers(1, 300), st.integers(1, 64), st.data())
def test_origins_cover_and_step(length, tile, data):
    stride = data.draw(st.integers(1, tile))
    origins = tile_origins(length, tile, stride)
    assert origins[0] == 0
    assert origins == sorted(set(origins))
    assert all(b - a <= stride for a, b in zip(origins, origins[1:]))
    if length >= tile:
        assert origins[-1] + tile == length
    else:
        assert origins == [0]
    covered = np.zeros(length, bool)
    for o in origins:
        covered[o : o + tile] = True
    assert covered.all()


@pytest.mark.parametrize("kind", ["cosine", "gaussian"])
@given(st.integers(1, 64), st.data())
def test_blend_weights_positive_and_symmetric(kind, tile, data):
    stride = data.draw(st.integers(1, tile))
    w = blend_weights(tile, stride, kind)
    assert w.shape == (tile, tile) and w.dtype == np.float32
    assert (w >= WEIGHT_FLOOR).all() and w.max() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_allclose(w, w[::-1, ::-1])


def test_cosine_weights_are_flat_without_overlap_and_ramp_with_it():
    assert (blend_weights(8, 8) == 1).all()
    w = blend_weights(16, 8)[8]
    assert w[0] < w[2] < w[4] < w[8]


def test_cosine_weights_sum_to_constant_in_the_interior():
    """With a regular stride the raised-cosine ramps of neighbours add up to one: no seams."""
    tile, stride, length = 16, 12, 16 + 12 * 4
    ramp = blend_weights(tile, stride)[tile // 2] / blend_weights(tile, stride)[tile // 2].max()
    total = np.zeros(length)
    for o in range(0, length - tile + 1, stride):
        total[o : o + tile] += ramp
    np.testing.assert_allclose(total[tile - stride : length - (tile - stride)], 1.0, atol=1e-3)


def _stream(height, width, tile, stride, field, kind="cosine"):
    """Run the row-band schedule over a (K, H, W) probability field; return the popped bands."""
    grid = TileGrid(height, width, tile, stride)
    k = field.shape[0]
    acc = BlendAccumulator(k, width)
    weights = blend_weights(tile, stride, kind)
    bands, max_rows = [], 0
    for r in range(len(grid.rows)):
        for t in grid.row_tiles(r):
            rs, cs = t.slices()
            acc.add(t.row, t.col, field[:, rs, cs], weights)
        max_rows = max(max_rows, acc.band_rows)
        bands.append(acc.pop_final(grid.final_rows_after(r)))
    return bands, max_rows


@settings(max_examples=60, deadline=None)
@given(scenes(), st.sampled_from(["cosine", "gaussian"]), st.floats(0.0, 1.0))
def test_constant_field_blends_to_the_constant(scene, kind, value):
    height, width, tile, stride = scene
    field = np.full((2, height, width), value, np.float32)
    field[1] = 1 - value
    bands, _ = _stream(height, width, tile, stride, field, kind)
    out = np.concatenate([b for _, b in bands], axis=1)
    np.testing.assert_allclose(out[0], value, atol=1e-5)
    np.testing.assert_allclose(out[1], 1 - value, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(scenes())
def test_every_pixel_output_exactly_once_in_contiguous_bands(scene):
    height, width, tile, stride = scene
    rng = np.random.default_rng(height * 1000 + width)
    field = rng.random((3, height, width)).astype(np.float32)
    bands, max_rows = _stream(height, width, tile, stride, field)
    next_row = 0
    for row0, probs in bands:
        assert row0 == next_row  # contiguous, no gaps, no repeats
        assert probs.shape[0] == 3 and probs.shape[2] == width
        next_row += probs.shape[1]
    assert next_row == height
    # Each tile sees the true field at its pixels, so any blend of them reproduces the field exactly.
    out = np.concatenate([b for _, b in bands], axis=1)
    np.testing.assert_allclose(out, field, rtol=1e-5, atol=1e-6)
    assert max_rows <= tile  # memory bound: one tile height, whatever the scene height


def test_band_memory_does_not_grow_with_height():
    _, small = _stream(40, 8, 16, 12, np.ones((1, 40, 8), np.float32))
    _, tall = _stream(4000, 8, 16, 12, np.ones((1, 4000, 8), np.float32))
    assert small == tall == 16


def test_pop_uncovered_rows_and_late_add_are_errors():
    acc = BlendAccumulator(1, 4)
    acc.add(0, 0, np.ones((1, 2, 4), np.float32), np.ones((2, 4), np.float32))
    with pytest.raises(ValueError):
        acc.pop_final(3)
    row0, probs = acc.pop_final(2)
    assert row0 == 0 and probs.shape == (1, 2, 4)
    with pytest.raises(ValueError):
        acc.add(1, 0, np.ones((1, 1, 4), np.float32), np.ones((1, 4), np.float32))


def test_tile_grid_iteration_clips_to_scene():
    grid = TileGrid(5, 7, 4, 3)
    tiles = list(grid)
    assert len(tiles) == len(grid) == 2 * 2
    assert tiles[-1] == (1, 3, 4, 4)
    small = list(TileGrid(3, 2, 8, 8))
    assert small == [(0, 0, 3, 2)]


@settings(max_examples=80, deadline=None)
@given(st.integers(-3, 5000), st.integers(-3, 5000))
def test_tile_stride_accepted_exactly_when_sensible(tile, stride):
    """check_tile_stride accepts 1 <= stride <= tile <= MAX_TILE and raises InputError otherwise, never more."""
    from slgt2_cli.infer.tiling import MAX_TILE, check_tile_stride

    sensible = 1 <= stride <= tile <= MAX_TILE
    if sensible:
        check_tile_stride(tile, stride)
    else:
        with pytest.raises(InputError):
            check_tile_stride(tile, stride)


@settings(max_examples=60, deadline=None)
@given(scenes())
def test_tiles_lie_inside_the_scene_and_cover_it_once_per_origin(scene):
    height, width, tile, stride = scene
    grid = TileGrid(height, width, tile, stride)
    cover = np.zeros((height, width), np.int32)
    tiles = list(grid)
    assert len(tiles) == len(set(tiles)) == len(grid)
    for t in tiles:
        assert 0 <= t.row and 0 <= t.col and 1 <= t.height <= tile and 1 <= t.width <= tile
        assert t.row + t.height <= height and t.col + t.width <= width
        cover[t.slices()] += 1
    assert cover.min() >= 1
    finals = [grid.final_rows_after(r) for r in range(len(grid.rows))]
    assert finals == sorted(finals) and finals[-1] == height
    for r, until in enumerate(finals):  # rows declared final are touched by no later tile row
        assert all(grid.rows[later] >= until for later in range(r + 1, len(grid.rows)))
