"""Procedural re-rendering of the dSprites data set, fitted to DeepMind's pixels.

dlib's ``dsprites_full``, ``dsprites_noshape``, ``color_dsprites``,
``noisy_dsprites`` and ``scream_dsprites`` read
``$DISENTANGLEMENT_LIB_DATA/dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``.
This module writes that file without network access: same keys, shapes,
dtypes, metadata and row order as DeepMind's file, with the same factors and
factor values, and pixels from a renderer whose geometry was fitted to real
dSprites frames (``../shared/reference/dsprites_real_frames.npz``; the fit and
its per-shape fidelity are in the README's datasets section and
``tests/test_data_dsprites_fidelity.py``). DeepMind drew the originals with
Love2D as vector shapes rasterised without anti-aliasing (their issue #2/#3);
this renderer follows that rule.

Geometry, renderer version 2 (lengths in pixels of the 64 x 64 canvas; pixel
``i`` covers ``[i, i + 1)``; ``x`` grows to the right along columns, ``y``
downwards along rows; ``s`` is the scale value 0.5 ... 1):

* position: the sprite's anchor is at ``16 + 32 * pos`` on each axis
  (posX/posY = ``linspace(0, 1, 32)``: 16.0, 17.03, ..., 48.0, a 32/31 px
  step): the middle half of the canvas, as in a Love2D canvas of size 1 with
  positions ``0.25 + 0.5 * pos``. posX moves right, posY moves down.
* square: side ``SIZE_PX * s`` (19.2 px = 0.3 of the canvas at scale 1),
  centred on the anchor.
* ellipse: semi-axes ``ELLIPSE_SEMI_AXES_PX * s`` (12.76 x 7.22 px at scale
  1; long axis horizontal at orientation 0), centred on the anchor.
* heart: the classic parametric heart ``x = 16 sin^3 t``, ``y = 13 cos t -
  5 cos 2t - 2 cos 3t - cos 4t`` (lobes up), drawn as a polygon of
  ``HEART_VERTICES`` points ``t = 2 pi k / 150``, stretched to ``SIZE_PX * s``
  wide (x / 32) and ``SIZE_PX * s`` over its y range of 29 units (y / 29), its
  curve origin ``HEART_ORIGIN_ABOVE_ANCHOR_PX * s`` above the anchor. The
  anchor is not the heart's area centroid, so the heart's centroid circles
  the anchor as it rotates (as in the real animation).
* orientation: every shape turns about its anchor by ``theta``
  counter-clockwise on screen. The 40 values are ``linspace(0, 2 pi, 40)``:
  both endpoints are included (a 2 pi / 39 step), so orientation 39 repeats
  orientation 0's image.
* rasterisation: a pixel is 1 iff its centre is inside the shape (point
  sampling, as OpenGL rasterises polygons without multisampling).

Implementation: every pixel centre, at every position, lies on one lattice of
offsets ``(n + 1/2) / 31`` px from the anchor (``16 + 32 k / 31`` puts all
positions on a 1/31 px grid), so each (shape, scale, orientation) sprite is
evaluated once on that lattice and each of its 1,024 images is a strided view
of it. Square and ellipse are tested in closed form; the heart polygon by
even-odd scanline crossings (vertices at lattice-row heights count for the edge
above them).

Determinism: the geometry uses only +, *, /, floor and comparisons on float64;
angles and heart vertices go through :func:`math.cos` and :func:`math.sin`
once each; the zip container has fixed timestamps. A generation is
byte-identical on every run.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache

import numpy as np

from splitenc_plugin._io import atomic_path
from splitenc_plugin.data._npz import write_array_member, write_streamed_member

SUBDIR = "dsprites"
FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
CANVAS_PX = 64

LATENT_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENT_SIZES = (1, 3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")

# Bumped whenever any pixel changes; recorded in the file's metadata and so in
# every job's data fingerprint (splitenc_plugin.data.fingerprint).
RENDERER_VERSION = 2

# Fitted to the real frames (see the module docstring).
POSITION_ORIGIN_PX = 16.0
POSITION_SPAN_PX = 32.0
SIZE_PX = 19.2
ELLIPSE_SEMI_AXES_PX = (12.76, 7.22)
HEART_VERTICES = 150
HEART_WIDTH_UNITS = 32.0   # x of the parametric heart spans [-16, 16]
HEART_HEIGHT_UNITS = 29.0  # its y spans [-17, 11.92]: DeepMind's stretch uses 29
HEART_ORIGIN_ABOVE_ANCHOR_PX = 1.438

# Lattice of anchor-relative sample offsets: (n + 1/2) / LATTICE px. Every
# pixel centre of every position is on it because the position step is
# POSITION_SPAN_PX / LATTICE = 32 / 31 px.
LATTICE = LATENT_SIZES[4] - 1
# Offsets up to _REACH px from the anchor are evaluated; no sprite reaches
# further (the square's corner at scale 1 is 9.6 * sqrt(2) = 13.6 px away).
_REACH = 14.0
_HALF = int(_REACH * LATTICE)          # lattice indices -_HALF-1 .. _HALF-1
_SIDE = 2 * _HALF + 1                   # (and one zero column for "outside")

_DESCRIPTION = (
    "Procedural re-rendering of the dSprites dataset (Matthey et al., 2017) by "
    "splitenc_plugin, renderer version 2: same latents, latent values, array layout and "
    "ordering as DeepMind's dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz, with pixels from "
    "a vector renderer fitted to real dSprites frames (point-sampled, no anti-aliasing). "
    "Ordering along dimension 0 is row-major over (color, shape, scale, orientation, posX, "
    "posY), posY fastest."
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
    """Maps a posX/posY index (0..31) to the sprite's anchor in canvas pixels.

    Args:
      pos_idx: Position index or array of indices.

    Returns:
      The continuous pixel coordinate of the anchor (pixel ``i`` covers
      ``[i, i + 1)``): ``16 + 32 * pos_idx / 31``.
    """
    idx = np.asarray(pos_idx, dtype=np.int64)
    return POSITION_ORIGIN_PX + POSITION_SPAN_PX * idx / LATTICE


def heart_polygon() -> np.ndarray:
    """The heart's outline at scale 1, orientation 0, relative to its anchor.

    Returns:
      A float64 array of shape (HEART_VERTICES, 2): (x right, y down) in pixels.
    """
    kx = SIZE_PX / HEART_WIDTH_UNITS
    ky = SIZE_PX / HEART_HEIGHT_UNITS
    points = []
    for k in range(HEART_VERTICES):
        t = 2.0 * math.pi * k / HEART_VERTICES
        x = 16.0 * math.sin(t) ** 3
        y = 13.0 * math.cos(t) - 5.0 * math.cos(2 * t) - 2.0 * math.cos(3 * t) - math.cos(4 * t)
        points.append((x * kx, -y * ky - HEART_ORIGIN_ABOVE_ANCHOR_PX))
    return np.array(points, dtype=np.float64)


def _offsets() -> np.ndarray:
    """Anchor-relative sample offsets of the lattice, in pixels, shape (_SIDE - 1,)."""
    return (np.arange(-_HALF, _HALF, dtype=np.float64) + 0.5) / LATTICE


def _inside_square(u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.5 * SIZE_PX * scale


def _inside_ellipse(u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    a, b = (r * scale for r in ELLIPSE_SEMI_AXES_PX)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _closed_form(inside: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
                 ) -> Callable[[float, float, float], np.ndarray]:
    """Lattice evaluation of a shape given by an inside test in its own frame."""
    def evaluate(scale: float, cos_t: float, sin_t: float) -> np.ndarray:
        d = _offsets()
        dx, dy = d[np.newaxis, :], d[:, np.newaxis]
        # Shape frame of each sample: the inverse of a counter-clockwise
        # (on screen, y down) rotation by theta.
        return inside(cos_t * dx - sin_t * dy, sin_t * dx + cos_t * dy, scale)
    return evaluate


def _heart_lattice(scale: float, cos_t: float, sin_t: float) -> np.ndarray:
    """Even-odd scanline fill of the rotated heart polygon on the lattice."""
    poly = heart_polygon() * scale
    # Counter-clockwise on screen (y down): (u, v) -> (u c + v s, -u s + v c).
    x = cos_t * poly[:, 0] + sin_t * poly[:, 1]
    y = -sin_t * poly[:, 0] + cos_t * poly[:, 1]
    x0, y0, x1, y1 = x, y, np.roll(x, -1), np.roll(y, -1)
    rows = _offsets()[:, np.newaxis]
    crosses = (y0 > rows) != (y1 > rows)                      # (rows, edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (rows - y0) * (x1 - x0) / (y1 - y0)
    r, e = np.nonzero(crosses)
    # A crossing toggles inside/outside for every sample right of it: the
    # first such lattice column is floor(x * LATTICE - 1/2) + 1 + _HALF.
    first = np.floor(x_cross[r, e] * LATTICE - 0.5).astype(np.int64) + 1 + _HALF
    toggles = np.zeros((_SIDE - 1, _SIDE), dtype=np.int32)
    np.add.at(toggles, (r, np.clip(first, 0, _SIDE - 1)), 1)
    return (np.cumsum(toggles, axis=1)[:, :-1] & 1).astype(bool)


# Indexed by the shape latent's class (0 square, 1 ellipse, 2 heart).
_SHAPES = (_closed_form(_inside_square), _closed_form(_inside_ellipse), _heart_lattice)


@lru_cache(maxsize=64)
def _sprite(shape_idx: int, scale_idx: int, orient_idx: int) -> np.ndarray:
    """One sprite on the lattice, padded with a zero row and column at the end."""
    values = latent_possible_values()
    theta = float(values["orientation"][orient_idx])
    scale = float(values["scale"][scale_idx])
    lattice = _SHAPES[shape_idx](scale, math.cos(theta), math.sin(theta))
    padded = np.zeros((_SIDE, _SIDE), dtype=np.uint8)
    padded[:-1, :-1] = lattice
    padded.flags.writeable = False
    return padded


def _lattice_index(pos_idx: np.ndarray) -> np.ndarray:
    """Lattice index of every pixel centre for each position: shape (positions, 64).

    Pixel ``i`` at position ``k`` is ``(i + 1/2) - 16 - 32 k / 31`` px from
    the anchor, i.e. lattice offset ``n + 1/2`` with ``n = 31 i - 32 k - 481``;
    offsets beyond the evaluated reach map to the zero padding.
    """
    pixel = np.arange(CANVAS_PX, dtype=np.int64)[np.newaxis, :]
    n = (LATTICE * pixel - int(POSITION_SPAN_PX) * np.asarray(pos_idx)[:, np.newaxis]
         - int(LATTICE * POSITION_ORIGIN_PX - (LATTICE - 1) // 2))
    index = n + _HALF
    return np.where((index >= 0) & (index < _SIDE - 1), index, _SIDE - 1)


def render_grid(shape_idx: int, scale_idx: int, orient_idx: int,
                posx_idx: Sequence[int] | None = None,
                posy_idx: Sequence[int] | None = None) -> np.ndarray:
    """Renders one sprite at every (posX, posY) of a grid, as the file has them.

    Args:
      shape_idx: Shape class.
      scale_idx: Scale class.
      orient_idx: Orientation class.
      posx_idx: posX classes; None means all 32.
      posy_idx: posY classes; None means all 32.

    Returns:
      A uint8 array of shape (len(posx_idx), len(posy_idx), 64, 64), values 0/1
      (the file's order: posY fastest).
    """
    every = np.arange(LATENT_SIZES[4], dtype=np.int64)
    posx_idx = every if posx_idx is None else np.asarray(posx_idx, dtype=np.int64)
    posy_idx = every if posy_idx is None else np.asarray(posy_idx, dtype=np.int64)
    sprite = _sprite(shape_idx, scale_idx, orient_idx)
    columns = sprite[:, _lattice_index(posx_idx)]              # (_SIDE, X, 64 cols)
    rows = _lattice_index(posy_idx)                             # (Y, 64 rows)
    # [lattice row, posX, col] -> [posX, posY, row, col]
    return columns[rows].transpose(2, 0, 1, 3)


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
    for n, (sh, sc, ori, px, py) in enumerate(zip(*(a.tolist() for a in flat))):
        images[n] = render_grid(sh, sc, ori, [px], [py])[0, 0]
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
        "version": RENDERER_VERSION,
        "latents_names": LATENT_NAMES,
        "latents_possible_values": {
            name: values[name][chosen[name]] for name in LATENT_NAMES},
        "latents_sizes": np.array([len(chosen[name]) for name in LATENT_NAMES],
                                  dtype=np.int64),
        "shape_names": SHAPE_NAMES,
        "author": "splitenc_plugin (procedural re-rendering)",
        "title": "dSprites dataset (procedural re-rendering)",
        "rendering": {
            "renderer_version": RENDERER_VERSION,
            "canvas_px": CANVAS_PX,
            "anchor_px": f"{POSITION_ORIGIN_PX} + {POSITION_SPAN_PX} * pos (x right, y down)",
            "square_side_px_at_scale_1": SIZE_PX,
            "ellipse_semi_axes_px_at_scale_1": ELLIPSE_SEMI_AXES_PX,
            "heart": (f"16 sin^3 t, 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t; "
                      f"{HEART_VERTICES} vertices; x * {SIZE_PX}/{HEART_WIDTH_UNITS}, "
                      f"y * {SIZE_PX}/{HEART_HEIGHT_UNITS}; origin "
                      f"{HEART_ORIGIN_ABOVE_ANCHOR_PX} px above the anchor"),
            "rotation": "counter-clockwise on screen about the anchor by orientation",
            "rasterisation": "pixel = 1 iff its centre is inside the shape",
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
    posx = np.asarray(chosen["posX"], dtype=np.int64)
    posy = np.asarray(chosen["posY"], dtype=np.int64)
    for _ in chosen["color"]:
        for sh in chosen["shape"]:
            for sc in chosen["scale"]:
                for ori in chosen["orientation"]:
                    yield render_grid(sh, sc, ori, posx, posy)
                _sprite.cache_clear()


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
        write_array_member(zf, "metadata", metadata, zipfile.ZIP_DEFLATED)
        write_streamed_member(zf, "imgs", (int(np.prod(sizes)), CANVAS_PX, CANVAS_PX),
                              np.dtype(np.uint8), _image_blocks(chosen), zipfile.ZIP_DEFLATED)
        write_array_member(zf, "latents_classes", classes, zipfile.ZIP_DEFLATED)
        write_array_member(zf, "latents_values", values, zipfile.ZIP_DEFLATED)
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
