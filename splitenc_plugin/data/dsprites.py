"""Procedural re-rendering of the dSprites data set, in DeepMind's file format.

dlib's ``dsprites_full``, ``dsprites_noshape``, ``color_dsprites``,
``noisy_dsprites`` and ``scream_dsprites`` read
``$DISENTANGLEMENT_LIB_DATA/dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``.
This module writes that file without network access: same keys, shapes,
dtypes, metadata and row order as DeepMind's file, with the same factors and
factor values, but our own pixels (DeepMind rendered theirs with Love2D; the
exact rasterisation is not published).

Geometry (all lengths in pixels of the 64 x 64 canvas; pixel ``i`` covers the
continuous interval ``[i, i + 1)``, ``x`` grows to the right along columns and
``y`` grows downwards along rows, as in the image array):

* position: ``centre = POSITION_MARGIN_PX + pos * 31 * POSITION_STEP_PX``, i.e.
  posX/posY = ``linspace(0, 1, 32)`` map to sprite centres 12.625, 13.875, ...,
  51.375 (a 1.25 px step, symmetric about the canvas centre 32.0). posX moves
  the sprite right, posY moves it down.
* size: every shape is normalised so that its circumscribed circle about its
  area centroid has radius ``SPRITE_RADIUS_PX * scale`` (11 px at scale 1).
  The sprite therefore never comes closer than 12.625 - 11 = 1.625 px to the
  border, whatever its orientation: rows/columns 0, 1, 62 and 63 stay empty.
* shapes: a square, an ellipse with axes 2:1 (long axis horizontal at
  orientation 0) and the classic implicit heart ``(x^2 + y^2 - 1)^3 <= x^2 y^3``
  (lobes up, point down at orientation 0). Areas at equal scale differ:
  ellipse 1.57 R^2 < square 2.00 R^2 < heart 2.20 R^2.
* orientation: the shape is rotated about its centroid by ``theta``, clockwise
  on screen (the mathematical sense in a y-down frame, as Love2D does).
* rasterisation: 8 x 8 supersampling per pixel (point samples at sub-pixel
  centres), area-averaged coverage, pixel = 1 where coverage >= 0.5.

Determinism: the per-sample geometry uses only +, *, / and comparisons on
float64 (the heart is a polynomial test, angles go through :func:`math.cos` and
:func:`math.sin` once per orientation), and the zip container has fixed
timestamps, so a generation is byte-identical on every run.

Speed and memory: each (shape, scale, orientation) sprite is rasterised once
per sub-pixel phase (a 1.25 px step has 4 phases per axis) and pasted at the
32 x 32 positions; the image array is streamed into the zip member block by
block, so peak memory stays in the hundreds of megabytes.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from splitenc_plugin._io import atomic_path

SUBDIR = "dsprites"
FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
CANVAS_PX = 64

LATENT_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENT_SIZES = (1, 3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")

# Sub-pixel samples per pixel side. 8 keeps the 1.25 px position step an
# integer number of samples (10), so each position is an exact integer shift
# of the same sample lattice and sprites can be rendered once per phase.
SUPERSAMPLE = 8
POSITION_STEP_FINE = 10
POSITION_STEP_PX = POSITION_STEP_FINE / SUPERSAMPLE
# Centres are placed symmetrically: (64 * 8 - 31 * 10) / 2 = 101 samples.
POSITION_MARGIN_FINE = (CANVAS_PX * SUPERSAMPLE
                        - (LATENT_SIZES[4] - 1) * POSITION_STEP_FINE) // 2
POSITION_MARGIN_PX = POSITION_MARGIN_FINE / SUPERSAMPLE
SPRITE_RADIUS_PX = 11.0

# The patch a sprite is rendered into: _HALF pixels either side of the pixel
# holding its centre, enough for the 11 px radius plus the sub-pixel phase.
_HALF = math.ceil(SPRITE_RADIUS_PX) + 1
_PATCH = 2 * _HALF + 1
# Sample offsets (in samples, relative to the sprite centre) covering every
# phase: phase p uses the window starting at SUPERSAMPLE - 1 - p.
_FINE_OFFSETS = (np.arange(_PATCH * SUPERSAMPLE + SUPERSAMPLE - 1, dtype=np.float64)
                 - (_HALF * SUPERSAMPLE + SUPERSAMPLE - 1))

# Implicit heart (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 (y up): its area centroid
# is at y = 0.293482 and the farthest boundary point from it is at 1.290607
# (both measured numerically on a 4000^2 grid, radius rounded up so the heart
# stays inside the unit circle). tests/test_data_dsprites.py re-measures them.
HEART_CENTROID_Y = 0.293482
HEART_RADIUS = 1.290700
_SQUARE_HALF_SIDE = 1.0 / math.sqrt(2.0)
_ELLIPSE_SEMI_MINOR = 0.5

_DESCRIPTION = (
    "Procedural re-rendering of the dSprites dataset (Matthey et al., 2017) by "
    "splitenc_plugin: same latents, latent values, array layout and ordering "
    "as DeepMind's dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz, but the "
    "pixels are our own rendering (supersampled, thresholded at 0.5), not "
    "DeepMind's. Ordering along dimension 0 is row-major over (color, shape, "
    "scale, orientation, posX, posY), posY fastest."
)


def latent_possible_values() -> dict[str, np.ndarray]:
    """Returns the value grid of each latent, as in the original metadata.

    Returns:
      A dict from latent name to a float64 array of its possible values.
    """
    return {
        "color": np.array([1.0]),
        "shape": np.array([1.0, 2.0, 3.0]),
        "scale": np.linspace(0.5, 1.0, LATENT_SIZES[2]),
        "orientation": np.linspace(0.0, 2.0 * np.pi, LATENT_SIZES[3]),
        "posX": np.linspace(0.0, 1.0, LATENT_SIZES[4]),
        "posY": np.linspace(0.0, 1.0, LATENT_SIZES[5]),
    }


def position_to_pixel(pos_idx: int | np.ndarray) -> np.ndarray:
    """Maps a posX/posY index (0..31) to the sprite centre in canvas pixels.

    Args:
      pos_idx: Position index or array of indices.

    Returns:
      The continuous pixel coordinate of the sprite centre (pixel ``i`` covers
      ``[i, i + 1)``): ``12.625 + 1.25 * pos_idx``.
    """
    idx = np.asarray(pos_idx, dtype=np.int64)
    return (POSITION_MARGIN_FINE + POSITION_STEP_FINE * idx) / SUPERSAMPLE


def _inside_square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= _SQUARE_HALF_SIDE


def _inside_ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    w = v / _ELLIPSE_SEMI_MINOR
    return u * u + w * w <= 1.0


def _inside_heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    x = u * HEART_RADIUS
    # Screen v points down, the implicit heart's y points up.
    y = HEART_CENTROID_Y - v * HEART_RADIUS
    r = x * x + y * y - 1.0
    return r * r * r - x * x * y * y * y <= 0.0


# Indexed by the shape latent's class (0 square, 1 ellipse, 2 heart).
_SHAPE_TESTS: tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], ...] = (
    _inside_square, _inside_ellipse, _inside_heart)


def _sprite_samples(shape_idx: int, scale_idx: int, orient_idx: int) -> np.ndarray:
    """Returns the boolean sample lattice of one sprite, for all phases."""
    values = latent_possible_values()
    theta = float(values["orientation"][orient_idx])
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    radius = SPRITE_RADIUS_PX * float(values["scale"][scale_idx])
    d = (_FINE_OFFSETS + 0.5) / SUPERSAMPLE / radius
    dx = d[np.newaxis, :]
    dy = d[:, np.newaxis]
    # Sample the shape at the inverse rotation of each sample point, which
    # rotates the shape by +theta (clockwise on screen, y down).
    u = cos_t * dx + sin_t * dy
    v = cos_t * dy - sin_t * dx
    return _SHAPE_TESTS[shape_idx](u, v)


def _phase_patch(samples: np.ndarray, phase_y: int, phase_x: int) -> np.ndarray:
    """Area-averages one phase window of the lattice and thresholds it."""
    sy = SUPERSAMPLE - 1 - phase_y
    sx = SUPERSAMPLE - 1 - phase_x
    size = _PATCH * SUPERSAMPLE
    window = samples[sy:sy + size, sx:sx + size]
    counts = window.reshape(_PATCH, SUPERSAMPLE, _PATCH, SUPERSAMPLE).sum(
        axis=(1, 3), dtype=np.int32)
    # Integer comparison: coverage >= 0.5 exactly, no float rounding.
    return (2 * counts >= SUPERSAMPLE * SUPERSAMPLE).astype(np.uint8)


class _Sprite:
    """One (shape, scale, orientation) sprite with its phase patches cached."""

    def __init__(self, shape_idx: int, scale_idx: int, orient_idx: int) -> None:
        self._samples = _sprite_samples(shape_idx, scale_idx, orient_idx)
        self._patches: dict[tuple[int, int], np.ndarray] = {}

    def paste(self, canvas: np.ndarray, posx_idx: int, posy_idx: int) -> None:
        """Draws the sprite into a zeroed 64 x 64 canvas at a position."""
        cx = POSITION_MARGIN_FINE + POSITION_STEP_FINE * posx_idx
        cy = POSITION_MARGIN_FINE + POSITION_STEP_FINE * posy_idx
        key = (cy % SUPERSAMPLE, cx % SUPERSAMPLE)
        patch = self._patches.get(key)
        if patch is None:
            patch = self._patches[key] = _phase_patch(self._samples, *key)
        x0 = cx // SUPERSAMPLE - _HALF
        y0 = cy // SUPERSAMPLE - _HALF
        canvas[y0:y0 + _PATCH, x0:x0 + _PATCH] = patch


def render(shape_idx: Iterable[int] | int,
           scale_idx: Iterable[int] | int,
           orient_idx: Iterable[int] | int,
           posx_idx: Iterable[int] | int,
           posy_idx: Iterable[int] | int) -> np.ndarray:
    """Renders chosen factor combinations, exactly as the generated file has them.

    The arguments are class indices (shape 0..2, scale 0..5, orientation
    0..39, posX 0..31, posY 0..31) and are broadcast against each other.

    Args:
      shape_idx: Shape class (0 square, 1 ellipse, 2 heart).
      scale_idx: Scale class.
      orient_idx: Orientation class.
      posx_idx: posX class.
      posy_idx: posY class.

    Returns:
      A uint8 array of shape (N, 64, 64) with values 0/1.

    Raises:
      ValueError: If an index is out of range.
    """
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=np.int64))
                                   for a in (shape_idx, scale_idx, orient_idx,
                                             posx_idx, posy_idx)))
    flat = [a.ravel() for a in arrays]
    for name, size, idx in zip(LATENT_NAMES[1:], LATENT_SIZES[1:], flat):
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise ValueError(f"{name} index out of range 0..{size - 1}: {idx}")
    images = np.zeros((flat[0].size, CANVAS_PX, CANVAS_PX), dtype=np.uint8)
    sprites: dict[tuple[int, int, int], _Sprite] = {}
    for n, (sh, sc, ori, px, py) in enumerate(zip(*(a.tolist() for a in flat))):
        sprite = sprites.get((sh, sc, ori))
        if sprite is None:
            sprite = sprites[(sh, sc, ori)] = _Sprite(sh, sc, ori)
        sprite.paste(images[n], px, py)
    return images


def _full_subset() -> dict[str, list[int]]:
    return {name: list(range(size)) for name, size in zip(LATENT_NAMES, LATENT_SIZES)}


def _normalise_subset(subset: Mapping[str, Sequence[int]] | None) -> dict[str, list[int]]:
    chosen = _full_subset()
    for name, indices in (subset or {}).items():
        if name not in chosen:
            raise ValueError(f"unknown latent {name!r}; expected one of {LATENT_NAMES}")
        full = len(chosen[name])
        idx = [int(i) for i in indices]
        if not idx or len(set(idx)) != len(idx) or min(idx) < 0 or max(idx) >= full:
            raise ValueError(
                f"subset for {name!r} must be distinct indices in 0..{full - 1}, got {idx}")
        chosen[name] = idx
    return chosen


def build_metadata(subset: Mapping[str, Sequence[int]] | None = None) -> dict:
    """Returns the ``metadata`` dict stored in the file, like the original's.

    Args:
      subset: Optional latent name -> chosen class indices (see
        :func:`generate_dsprites`); ``latents_sizes`` and
        ``latents_possible_values`` then describe the subset.

    Returns:
      A dict with the original's keys (``latents_sizes``, ``latents_names``,
      ``latents_possible_values``, ``description``, ...).
    """
    chosen = _normalise_subset(subset)
    values = latent_possible_values()
    return {
        "date": "generated by splitenc_plugin",
        "description": _DESCRIPTION,
        "version": 1,
        "latents_names": LATENT_NAMES,
        "latents_possible_values": {
            name: values[name][chosen[name]] for name in LATENT_NAMES},
        "latents_sizes": np.array([len(chosen[name]) for name in LATENT_NAMES],
                                  dtype=np.int64),
        "shape_names": SHAPE_NAMES,
        "author": "splitenc_plugin (procedural re-rendering)",
        "title": "dSprites dataset (procedural re-rendering)",
        "rendering": {
            "canvas_px": CANVAS_PX,
            "position_centre_px": "12.625 + 38.75 * pos (x right, y down)",
            "sprite_radius_px_at_scale_1": SPRITE_RADIUS_PX,
            "supersample": SUPERSAMPLE,
            "threshold": "coverage >= 0.5",
            "rotation": "clockwise on screen by orientation",
        },
    }


def latents(subset: Mapping[str, Sequence[int]] | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Returns the file's ``latents_classes`` and ``latents_values`` arrays.

    Args:
      subset: Optional reduced factor grid, see :func:`write_dsprites_npz`.

    Returns:
      ``(classes, values)``: int64 and float64 arrays of shape (N, 6), rows in
      row-major order over (color, shape, scale, orientation, posX, posY)
      with posY fastest; classes index the full grids.
    """
    chosen = _normalise_subset(subset)
    sizes = [len(chosen[name]) for name in LATENT_NAMES]
    grid = np.unravel_index(np.arange(int(np.prod(sizes)), dtype=np.int64), sizes)
    classes = np.stack(
        [np.asarray(chosen[name], dtype=np.int64)[g] for name, g in zip(LATENT_NAMES, grid)],
        axis=1)
    values = latent_possible_values()
    latent_values = np.stack(
        [values[name][classes[:, k]] for k, name in enumerate(LATENT_NAMES)], axis=1)
    return classes, latent_values


def _image_blocks(chosen: Mapping[str, list[int]]) -> Iterator[np.ndarray]:
    """Yields the images in file order, one (shape, scale, orientation) at a time."""
    posx, posy = chosen["posX"], chosen["posY"]
    block = np.zeros((len(posx), len(posy), CANVAS_PX, CANVAS_PX), dtype=np.uint8)
    for _ in chosen["color"]:
        for sh in chosen["shape"]:
            for sc in chosen["scale"]:
                for ori in chosen["orientation"]:
                    sprite = _Sprite(sh, sc, ori)
                    block.fill(0)
                    for a, px in enumerate(posx):
                        for b, py in enumerate(posy):
                            sprite.paste(block[a, b], px, py)
                    yield block


def _zip_info(name: str) -> zipfile.ZipInfo:
    # A fixed timestamp keeps the container byte-identical across runs.
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _write_array_member(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with zf.open(_zip_info(name + ".npy"), "w", force_zip64=True) as member:
        np.lib.format.write_array(member, array, allow_pickle=True)


def _write_streamed_member(zf: zipfile.ZipFile, name: str, shape: tuple[int, ...],
                           dtype: np.dtype, blocks: Iterable[np.ndarray]) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
              "fortran_order": False, "shape": shape}
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    written = 0
    with zf.open(_zip_info(name + ".npy"), "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        for block in blocks:
            data = np.ascontiguousarray(block, dtype=dtype)
            member.write(memoryview(data).cast("B"))
            written += data.nbytes
    if written != expected:
        raise RuntimeError(f"{name}: wrote {written} bytes, expected {expected}")


def write_dsprites_npz(path: str,
                       subset: Mapping[str, Sequence[int]] | None = None) -> str:
    """Writes a dSprites npz (full, or a subset of the factor grid) atomically.

    The file is written to a temporary name in the same directory and moved
    into place with :func:`os.replace`, so an interrupted run never leaves a
    partial file under ``path``.

    Args:
      path: Destination file path; its directory must exist.
      subset: Optional latent name -> class indices to keep (for example
        ``{"orientation": [0, 10], "posX": [0, 31]}``); omitted latents keep
        all values. The images for a kept combination are identical to the
        full file's.

    Returns:
      ``path``.
    """
    chosen = _normalise_subset(subset)
    sizes = tuple(len(chosen[name]) for name in LATENT_NAMES)
    classes, values = latents(chosen)
    metadata = np.empty((), dtype=object)
    metadata[()] = build_metadata(chosen)
    with atomic_path(path) as tmp, zipfile.ZipFile(
            tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        _write_array_member(zf, "metadata", metadata)
        _write_streamed_member(zf, "imgs", (int(np.prod(sizes)), CANVAS_PX, CANVAS_PX),
                               np.dtype(np.uint8), _image_blocks(chosen))
        _write_array_member(zf, "latents_classes", classes)
        _write_array_member(zf, "latents_values", values)
    return path


def generate_dsprites(output_dir: str,
                      subset: Mapping[str, Sequence[int]] | None = None) -> str:
    """Generates ``<output_dir>/dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``.

    Args:
      output_dir: The data root (what ``$DISENTANGLEMENT_LIB_DATA`` points to);
        the ``dsprites`` subdirectory is created if needed.
      subset: Optional reduced factor grid, see :func:`write_dsprites_npz`.
        dlib samples factors from the file's ``latents_sizes``, so a reduced
        file loads, but dlib's ``factors_num_values`` stays hard-coded to the
        full sizes: use subsets for tests only.

    Returns:
      The path of the written file.
    """
    directory = os.path.join(output_dir, SUBDIR)
    os.makedirs(directory, exist_ok=True)
    return write_dsprites_npz(os.path.join(directory, FILENAME), subset)
