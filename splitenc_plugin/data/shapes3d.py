"""DeepMind's ``3dshapes.h5`` -> the Shapes3D ``.npz`` dlib reads, streamed and checked.

DeepMind publishes 3dshapes as an HDF5 file: ``images`` (480000, 64, 64, 3)
uint8 and ``labels`` (480000, 6) float64, rows in row-major order of the
factors floor_hue, wall_hue, object_hue, scale, shape, orientation with 10,
10, 10, 8, 4, 15 values (:data:`FACTOR_NAMES`, :func:`label_values`). dlib's
``shapes3d.py`` instead reads
``$DISENTANGLEMENT_LIB_DATA/3dshapes/look-at-object-room_floor-hueXwall-hueXobj-hueXobj-sizeXobj-shapeXview-azi.npz``
with ``images`` reshaped to (10, 10, 10, 8, 4, 15, 64, 64, 3) uint8 and
``labels`` to (10, 10, 10, 8, 4, 15, 6).

:func:`convert_h5` writes that npz without holding the images: it checks the
h5 file's datasets, shapes and dtypes, checks every label row against the
factor layout (so rows land where dlib's reshape expects them), then copies
the images in chunks of :data:`CHUNK_IMAGES` (49 MB) into an uncompressed
(``np.savez``-style) npz member, which the lean loader
(:mod:`splitenc_plugin.data.lean_data`) maps in place. The output is written to a
temporary file and moved into place only when complete: a truncated or
malformed h5 gives one :class:`ConversionError` and no output.

``block_sizes`` converts a *prefix block* of the layout (leading factors fixed
to their first value, one factor cut short, the later ones complete: exactly
the first rows of the real order), for test fixtures; :func:`write_layout_h5`
writes such h5 files. Nothing here imports TensorFlow; h5py is imported when
an h5 file is read or written.
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from splitenc_plugin._io import atomic_path
from splitenc_plugin.data import registry
from splitenc_plugin.data._npz import write_array_member, write_streamed_member
from splitenc_plugin.errors import SplitencUserError

__all__ = [
    "CHUNK_IMAGES",
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "ConversionError",
    "check_block_sizes",
    "convert_h5",
    "label_values",
    "output_bytes",
    "write_layout_h5",
]

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = tuple(registry.SHAPES3D_FACTOR_SIZES)
IMAGE_SHAPE = (64, 64, 3)
#: Images copied per chunk (64 x 64 x 3 bytes each: 49 MB).
CHUNK_IMAGES = 4000


class ConversionError(SplitencUserError):
    """An h5 file that is not DeepMind's 3dshapes layout (or cannot be read)."""


def label_values() -> list[np.ndarray]:
    """The label value of each class of each factor, as in DeepMind's 3dshapes.h5.

    Returns:
      Six arrays (sizes 10, 10, 10, 8, 4, 15): hues ``k / 10``, scale
      ``linspace(0.75, 1.25, 8)``, shape ``0..3``, orientation
      ``linspace(-30, 30, 15)``.
    """
    hues = np.arange(10) / 10.0
    return [hues, hues, hues, np.linspace(0.75, 1.25, 8), np.arange(4, dtype=np.float64),
            np.linspace(-30.0, 30.0, 15)]


def check_block_sizes(block_sizes: Sequence[int] | None) -> tuple[int, ...]:
    """Returns the block's sizes, checking that it is a prefix block of the layout.

    Args:
      block_sizes: Six sizes, or None for the full layout.

    Raises:
      ConversionError: If it is not a prefix block (some leading factors of
        size 1, then at most one partial factor, then complete factors).
    """
    if block_sizes is None:
        return FACTOR_SIZES
    sizes = tuple(int(s) for s in block_sizes)
    first = next((k for k, s in enumerate(sizes) if s != 1), len(sizes))
    ok = (len(sizes) == len(FACTOR_SIZES)
          and all(1 <= s <= n for s, n in zip(sizes, FACTOR_SIZES))
          and all(sizes[k] == FACTOR_SIZES[k] for k in range(first + 1, len(FACTOR_SIZES))))
    if not ok:
        raise ConversionError(f"block sizes {list(sizes)} are not a prefix block of "
                              f"{list(FACTOR_SIZES)} (leading 1s, one partial factor, then "
                              f"complete factors)")
    return sizes


def _expected_labels(rows: np.ndarray, sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(factor classes (r, 6), label values (r, 6)) of the given rows of the layout."""
    classes = np.stack(np.unravel_index(rows, sizes), axis=1)
    grids = label_values()
    return classes, np.stack([grids[k][classes[:, k]] for k in range(6)], axis=1)


def _check_labels(path: str, labels: np.ndarray, sizes: tuple[int, ...]) -> None:
    """Raises unless every row's labels are the layout's values for that row."""
    rows = np.arange(labels.shape[0])
    classes, expected = _expected_labels(rows, sizes)
    # A tolerance of 1% of each factor's step: the stored floats need not be
    # bit-equal to ours, but must be the value of the expected class.
    steps = np.array([np.diff(g).min() if len(g) > 1 else 1.0 for g in label_values()])
    bad = np.abs(labels - expected) > 0.01 * steps
    if bad.any():
        row, factor = map(int, np.argwhere(bad)[0])
        raise ConversionError(
            f"{path}: row {row} has {FACTOR_NAMES[factor]} = {labels[row, factor]:g}, but the "
            f"3dshapes layout (factors {', '.join(FACTOR_NAMES)} with sizes "
            f"{list(FACTOR_SIZES)}, row-major) puts class {classes[row, factor]} = "
            f"{expected[row, factor]:g} there ({int(bad.any(axis=1).sum())} rows differ); "
            f"this is not DeepMind's 3dshapes.h5 order")


def convert_h5(h5_path: str, output_dir: str, block_sizes: Sequence[int] | None = None,
               chunk_images: int = CHUNK_IMAGES) -> str:
    """Converts DeepMind's ``3dshapes.h5`` to the npz dlib's Shapes3D loader reads.

    Args:
      h5_path: The h5 file: ``images`` (n, 64, 64, 3) uint8, ``labels`` (n, 6).
      output_dir: The data root (``$DISENTANGLEMENT_LIB_DATA``); the npz goes to
        ``<output_dir>/3dshapes/look-at-object-room_...npz``.
      block_sizes: None for the real layout (n = 480,000); a prefix block of
        it for test fixtures (see :func:`check_block_sizes`).
      chunk_images: Images copied per chunk (bounds the memory used).

    Returns:
      The path of the written npz: ``images`` (*sizes, 64, 64, 3) uint8 and
      ``labels`` (*sizes, 6) with the h5's label dtype, stored uncompressed.

    Raises:
      ConversionError: If the file cannot be read (e.g. truncated) or is not
        in the layout; nothing is written then.
      OSError: If the output cannot be written (a full disk, a file where its
        directory should be); nothing is left behind either.
    """
    import h5py  # Lazy: only the converter needs it.

    sizes = check_block_sizes(block_sizes)
    n = math.prod(sizes)
    out = os.path.join(output_dir, registry.SHAPES3D_FILE)
    # Reading and writing fail apart: a read error blames the h5 (ConversionError),
    # a write error (a full disk, a file in the way) propagates as the OSError it is.
    with _reading(h5_path):
        f = h5py.File(h5_path, "r")
    with f:
        with _reading(h5_path):
            images, labels = _checked_input(f, h5_path, sizes, block_sizes is not None)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with atomic_path(out, suffix=".npz") as tmp, zipfile.ZipFile(
                tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            write_streamed_member(zf, "images", (*sizes, *IMAGE_SHAPE), np.dtype(np.uint8),
                                  _image_chunks(h5_path, images, n, chunk_images),
                                  zipfile.ZIP_STORED)
            write_array_member(zf, "labels", labels.reshape(*sizes, len(FACTOR_SIZES)),
                               zipfile.ZIP_STORED)
    return out


def output_bytes(block_sizes: Sequence[int] | None = None) -> int:
    """Bytes of the npz :func:`convert_h5` writes (its images; 5.9 GB for the full layout)."""
    return math.prod(check_block_sizes(block_sizes)) * math.prod(IMAGE_SHAPE)


@contextlib.contextmanager
def _reading(h5_path: str) -> Iterator[None]:
    """Turns a failure to read the h5 file into one :class:`ConversionError`."""
    try:
        yield
    except ConversionError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        # h5py raises OSError for truncated/corrupt files ("truncated file: eof
        # = ...") and on reads of damaged chunks.
        raise ConversionError(f"cannot read {h5_path} as an HDF5 file (truncated or corrupt: "
                              f"{exc}); no output was written") from None


def _checked_input(f: Any, h5_path: str, sizes: tuple[int, ...],
                   is_block: bool) -> tuple[Any, np.ndarray]:
    """(the images dataset, the labels (n, 6)) of an h5 file in the layout, else raises."""
    import h5py

    n = math.prod(sizes)
    for name in ("images", "labels"):
        if not isinstance(f.get(name), h5py.Dataset):
            raise ConversionError(f"{h5_path} has no dataset {name!r} (it has "
                                  f"{sorted(f.keys())}); 3dshapes.h5 has 'images' "
                                  f"and 'labels'")
    images, labels_ds = f["images"], f["labels"]
    layout = (f"{n:,} = {' x '.join(map(str, sizes))} images"
              + (" (the prefix block asked for)" if is_block else ""))
    if images.shape != (n, *IMAGE_SHAPE) or images.dtype != np.uint8:
        raise ConversionError(
            f"{h5_path}: images is {images.dtype}{list(images.shape)}, the 3dshapes "
            f"layout has uint8{[n, *IMAGE_SHAPE]} ({layout})"
            + (" - a partial download?" if images.shape[0] < n else ""))
    if labels_ds.shape != (n, len(FACTOR_SIZES)):
        raise ConversionError(f"{h5_path}: labels is {list(labels_ds.shape)}, the "
                              f"3dshapes layout has {[n, len(FACTOR_SIZES)]}")
    labels = labels_ds[()]  # n x 6 floats: 23 MB for the real file
    _check_labels(h5_path, labels, sizes)
    return images, labels


def _image_chunks(h5_path: str, images: Any, n: int, chunk_images: int) -> Iterator[np.ndarray]:
    """The h5 images in chunks; a failed read is the input's fault, said as such."""
    for start in range(0, n, chunk_images):
        with _reading(h5_path):
            block = images[start:start + chunk_images]
        yield block


def write_layout_h5(path: str, block_sizes: Sequence[int] | None,
                    pixel_values: Callable[[np.ndarray], np.ndarray],
                    chunk_images: int = CHUNK_IMAGES) -> str:
    """Writes an h5 file in DeepMind's 3dshapes layout, for tests and benchmarks.

    Datasets ``images`` (n, 64, 64, 3) uint8 (every pixel of row ``r`` set to
    ``pixel_values(classes of r)``) and ``labels`` (n, 6) float64 (the
    :func:`label_values` of each row's classes), rows in the layout's order,
    written in chunks (the full 480,000-row file takes 5.9 GB on disk and
    ~50 MB of memory).

    Args:
      path: The h5 file to write (atomically).
      block_sizes: A prefix block (see :func:`check_block_sizes`), None = full.
      pixel_values: Factor classes (r, 6) -> RGB (r, 3) in 0..255.
      chunk_images: Rows written per chunk.

    Returns:
      ``path``.
    """
    import h5py

    sizes = check_block_sizes(block_sizes)
    n = math.prod(sizes)
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        images = f.create_dataset("images", (n, *IMAGE_SHAPE), dtype=np.uint8)
        labels = f.create_dataset("labels", (n, len(FACTOR_SIZES)), dtype=np.float64)
        for start in range(0, n, chunk_images):
            rows = np.arange(start, min(n, start + chunk_images))
            classes, values = _expected_labels(rows, sizes)
            rgb = np.asarray(pixel_values(classes)).astype(np.uint8)
            images[rows[0]:rows[-1] + 1] = np.broadcast_to(
                rgb[:, None, None, :], (len(rows), *IMAGE_SHAPE))
            labels[rows[0]:rows[-1] + 1] = values
    return path
