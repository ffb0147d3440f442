"""Small test fixtures of SmallNORB, Cars3D and Shapes3D in their real file formats.

These writers exist for tests only (they are not data anyone should train
on): they let dlib's own loaders run without the real downloads. Each writes
the files, names and binary layout that dlib's ``norb.py``, ``cars3d.py`` and
``shapes3d.py`` read, with synthetic images that encode their factor values
so a test can check that dlib maps factors to the right images:

* SmallNORB (NYU binary matrices under ``small_norb/``): the image is split in
  quadrants holding :func:`smallnorb_quadrant_values`. dlib requires the two
  chunks together to cover all 5 x 10 x 9 x 18 x 6 = 48,600 factor
  combinations (``StateSpaceAtomIndex``), so the row counts are the real
  24,300 per chunk; only the image side (96 in the real files) can shrink.
* Cars3D (``cars/car_NNN_mesh.mat``, MATLAB v5, variable ``im`` of shape
  (H, W, 3, 24 azimuths, 4 elevations) uint8): channel values from
  :func:`cars3d_pixel_values`. dlib hard-codes 183 cars but fills cars that
  have no file with blank images, so fewer cars still load.
* Damage (:func:`damage_npz_member`): one byte of an npz member flipped, its
  stored CRC-32 left as it was, as a bad copy or a failing disk leaves it.
* Shapes3D (``3dshapes/look-at-object-room_...npz``, ``images`` of shape
  (10, 10, 10, 8, 4, 15, 64, 64, 3) uint8 and ``labels`` (..., 6) float64):
  the full array is 5.9 GB and dlib turns it into 23.6 GB of float32, so
  the fixture writes a prefix block of the real row-major order (leading
  factors fixed to their first value), which dlib indexes correctly for
  factors inside the block. Channel values from :func:`shapes3d_pixel_values`.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Sequence

import numpy as np

from splitenc_plugin.data import registry

SMALLNORB_INSTANCES = {
    "5x46789x9x18x6x2x96x96-training": (4, 6, 7, 8, 9),
    "5x01235x9x18x6x2x96x96-testing": (0, 1, 2, 3, 5),
}
CARS3D_ELEVATIONS = 4
CARS3D_AZIMUTHS = 24


def _write_bytes(path: str, chunks: Sequence[bytes | memoryview | np.ndarray]) -> None:
    with open(path, "wb") as f:
        f.writelines(chunks)


def write_norb_matrix(path: str, array: np.ndarray) -> None:
    """Writes an array in NYU's binary matrix format (as SmallNORB's .mat files).

    Layout (little endian): int32 magic, int32 ndim, max(3, ndim) int32 dims
    (unused ones are 1), then the C-order payload.

    Args:
      path: Output file.
      array: uint8 (magic 0x1E3D4C55) or int32 (magic 0x1E3D4C54) array.

    Raises:
      ValueError: For other dtypes.
    """
    magics = {np.dtype(np.uint8): registry.NORB_MAGIC_UINT8,
              np.dtype(np.int32): registry.NORB_MAGIC_INT32}
    magic = magics.get(array.dtype)
    if magic is None:
        raise ValueError(f"NORB fixtures support uint8 and int32, not {array.dtype}")
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = struct.pack(f"<ii{len(dims)}i", magic, array.ndim, *dims)
    payload = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    _write_bytes(path, [header, payload])


def smallnorb_quadrant_values(category: np.ndarray, elevation: np.ndarray,
                              azimuth: np.ndarray, lighting: np.ndarray) -> np.ndarray:
    """Returns the four quadrant intensities (0..255) encoding SmallNORB factors.

    Args:
      category: Category 0..4.
      elevation: Elevation 0..8.
      azimuth: Azimuth class 0..17 (the file stores 2 * azimuth).
      lighting: Lighting 0..5.

    Returns:
      Array (..., 4): top-left, top-right, bottom-left, bottom-right values.
    """
    return np.stack([20 + 40 * np.asarray(category), 20 + 25 * np.asarray(elevation),
                     10 + 13 * np.asarray(azimuth), 20 + 40 * np.asarray(lighting)], axis=-1)


def write_smallnorb_fixture(data_root: str, image_size: int = 96, seed: int = 0) -> list[str]:
    """Writes the six SmallNORB files dlib reads under ``<data_root>/small_norb``.

    Each chunk has the real 24,300 rows (5 categories x 5 instances x 9
    elevations x 18 azimuths x 6 lightings), in a seeded random order like
    the real files' arbitrary order; ``-dat`` holds (24300, 2, S, S) uint8
    stereo pairs, ``-cat`` (24300,) int32 and ``-info`` (24300, 4) int32
    (instance, elevation, 2 * azimuth, lighting).

    Args:
      data_root: The data root.
      image_size: Image side S (96 in the real data; smaller is faster).
      seed: Seed of the row order.

    Returns:
      The six file paths.
    """
    directory = os.path.join(data_root, "small_norb")
    os.makedirs(directory, exist_ok=True)
    rng = np.random.RandomState(seed)
    half = image_size // 2
    paths = []
    for chunk, instances in SMALLNORB_INSTANCES.items():
        cat, inst, elev, azim, light = (a.ravel() for a in np.meshgrid(
            np.arange(5), np.array(instances), np.arange(9), np.arange(18), np.arange(6),
            indexing="ij"))
        order = rng.permutation(cat.size)
        cat, inst, elev, azim, light = (a[order] for a in (cat, inst, elev, azim, light))
        quads = smallnorb_quadrant_values(cat, elev, azim, light).astype(np.uint8)
        images = np.empty((cat.size, 2, image_size, image_size), dtype=np.uint8)
        images[:, :, :half, :half] = quads[:, 0, None, None, None]
        images[:, :, :half, half:] = quads[:, 1, None, None, None]
        images[:, :, half:, :half] = quads[:, 2, None, None, None]
        images[:, :, half:, half:] = quads[:, 3, None, None, None]
        info = np.stack([inst, elev, 2 * azim, light], axis=1).astype(np.int32)
        for kind, array in (("dat", images), ("cat", cat.astype(np.int32)), ("info", info)):
            path = os.path.join(directory, f"smallnorb-{chunk}-{kind}.mat")
            write_norb_matrix(path, array)
            paths.append(path)
    return paths


def cars3d_pixel_values(elevation: np.ndarray, azimuth: np.ndarray,
                        car: np.ndarray) -> np.ndarray:
    """Returns the RGB value (0..255) of every pixel of a Cars3D fixture image.

    Args:
      elevation: Elevation 0..3.
      azimuth: Azimuth 0..23.
      car: Car number 0..182 (the file ``car_{car+1:03d}_mesh.mat``).

    Returns:
      Array (..., 3).
    """
    return np.stack([40 + 50 * np.asarray(elevation), 10 * np.asarray(azimuth),
                     1 + np.asarray(car)], axis=-1)


def write_cars3d_fixture(data_root: str, num_cars: int = registry.CARS3D_NUM_CARS,
                         image_size: int = 128) -> list[str]:
    """Writes ``<data_root>/cars/car_NNN_mesh.mat`` files as dlib's cars3d.py reads.

    Each file holds ``im``: (S, S, 3, 24, 4) uint8, azimuth on axis 3 and
    elevation on axis 4 as in the real data, every pixel set to
    :func:`cars3d_pixel_values`.

    Args:
      data_root: The data root.
      num_cars: Number of cars (183 in the real data; dlib loads fewer too).
      image_size: Image side S (128 in the real data; dlib thumbnails to 64).

    Returns:
      The file paths.
    """
    import scipy.io  # Lazy: scipy is only needed to write MAT files.

    directory = os.path.join(data_root, registry.CARS3D_DIR)
    os.makedirs(directory, exist_ok=True)
    elev, azim = np.meshgrid(np.arange(CARS3D_ELEVATIONS), np.arange(CARS3D_AZIMUTHS),
                             indexing="ij")
    paths = []
    for car in range(num_cars):
        rgb = cars3d_pixel_values(elev, azim, np.full_like(elev, car)).astype(np.uint8)
        # rgb is (elevation, azimuth, 3); im is (S, S, 3, azimuth, elevation).
        im = np.broadcast_to(rgb.transpose(2, 1, 0), (image_size, image_size, 3,
                                                      CARS3D_AZIMUTHS, CARS3D_ELEVATIONS))
        path = os.path.join(directory, f"car_{car + 1:03d}_mesh.mat")
        scipy.io.savemat(path, {"im": np.ascontiguousarray(im)}, do_compression=True)
        paths.append(path)
    return paths


def shapes3d_label_values() -> list[np.ndarray]:
    """Returns the label value grid of each Shapes3D factor, as in 3dshapes.h5."""
    return [np.arange(10) / 10.0, np.arange(10) / 10.0, np.arange(10) / 10.0,
            np.linspace(0.75, 1.25, 8), np.arange(4, dtype=np.float64),
            np.linspace(-30.0, 30.0, 15)]


def shapes3d_pixel_values(factors: np.ndarray) -> np.ndarray:
    """Returns the RGB value (0..255) of every pixel of a Shapes3D fixture image.

    Args:
      factors: Integer array (..., 6) of factor classes.

    Returns:
      Array (..., 3): 10 * floor + wall, 10 * object + size, 15 * shape + azimuth.
    """
    f = np.asarray(factors)
    return np.stack([10 * f[..., 0] + f[..., 1], 10 * f[..., 2] + f[..., 3],
                     15 * f[..., 4] + f[..., 5]], axis=-1)


def write_shapes3d_fixture(data_root: str,
                           block_sizes: Sequence[int] = (1, 1, 1, 2, 4, 15)) -> str:
    """Writes the Shapes3D npz dlib reads, holding a prefix block of the real order.

    Args:
      data_root: The data root.
      block_sizes: How many values of each factor to include. It must be a
        prefix of the real row-major order: some leading factors fixed to 1
        value, then at most one partial factor, then all later factors full
        (so row ``k`` of the fixture is row ``k`` of the real file). The full
        sizes (10, 10, 10, 8, 4, 15) write the complete 5.9 GB layout.

    Returns:
      The file path.

    Raises:
      ValueError: If ``block_sizes`` is not a prefix block.
    """
    full = registry.SHAPES3D_FACTOR_SIZES
    sizes = tuple(int(s) for s in block_sizes)
    # Leading factors fixed to one value, then one factor cut short, then all
    # later factors complete: exactly the first rows of the real order.
    first = next((k for k, s in enumerate(sizes) if s != 1), len(sizes))
    ok = (len(sizes) == len(full) and all(1 <= s <= n for s, n in zip(sizes, full))
          and all(sizes[k] == full[k] for k in range(first + 1, len(full))))
    if not ok:
        raise ValueError(f"block_sizes {sizes} is not a prefix block of {full}")
    factors = np.stack(np.meshgrid(*(np.arange(s) for s in sizes), indexing="ij"), axis=-1)
    rgb = shapes3d_pixel_values(factors).astype(np.uint8)
    images = np.broadcast_to(rgb[..., None, None, :], sizes + (64, 64, 3))
    label_grid = shapes3d_label_values()
    labels = np.stack([label_grid[k][factors[..., k]] for k in range(6)], axis=-1)
    path = os.path.join(data_root, registry.SHAPES3D_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, images=np.ascontiguousarray(images), labels=labels)
    return path


def damage_npz_member(path: str, member: str, fraction: float = 0.5) -> int:
    """Flips one byte of an npz member's stored (possibly compressed) bytes, in place.

    The zip directory, and the CRC-32 it stores for the member, stay as they
    were: the file still has the right layout, but its bytes no longer match.

    Args:
      path: The npz.
      member: The member, e.g. ``"images.npy"``.
      fraction: Where in the member's stored bytes (0..1).

    Returns:
      The file offset of the flipped byte.
    """
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        offset = (info.header_offset + 30 + name_len + extra_len
                  + int((info.compress_size - 1) * fraction))
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0xFF]))
    return offset
