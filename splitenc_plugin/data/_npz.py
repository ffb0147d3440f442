"""The npz container (a zip of ``.npy`` members) as the data tools write and read it.

One place for what the dSprites renderer, the Shapes3D converter, the dataset
registry, the lean loaders and the fingerprints share: members written with a
fixed timestamp (byte-identical files across runs), streamed in blocks (no
whole array in memory), ``.npy`` headers read without the data, the
members' CRC list that identifies a file's content without reading it, and
the streamed read that checks the content against those CRCs.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np

__all__ = ["drain", "member_crcs", "read_members", "read_npy_header", "write_array_member",
           "write_streamed_member", "zip_info"]

# Bytes read per call while checking members (bounds the memory used).
_READ_CHUNK = 1 << 24


def zip_info(name: str, compress_type: int) -> zipfile.ZipInfo:
    """A member's zip entry with a fixed timestamp, so equal content gives equal bytes."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    return info


def write_array_member(zf: zipfile.ZipFile, name: str, array: np.ndarray,
                       compress_type: int) -> None:
    """Writes ``array`` as member ``<name>.npy`` (as ``np.savez`` would, pickles allowed)."""
    with zf.open(zip_info(name + ".npy", compress_type), "w", force_zip64=True) as member:
        np.lib.format.write_array(member, array, allow_pickle=True)


def write_streamed_member(zf: zipfile.ZipFile, name: str, shape: tuple[int, ...],
                          dtype: np.dtype, blocks: Iterable[np.ndarray],
                          compress_type: int) -> None:
    """Writes member ``<name>.npy`` of ``shape`` from C-order ``blocks``, one at a time.

    Raises:
      RuntimeError: If the blocks do not add up to ``shape`` exactly.
    """
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
              "fortran_order": False, "shape": tuple(shape)}
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    written = 0
    with zf.open(zip_info(name + ".npy", compress_type), "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        for block in blocks:
            data = np.ascontiguousarray(block, dtype=dtype)
            member.write(memoryview(data).cast("B"))
            written += data.nbytes
    if written != expected:
        raise RuntimeError(f"{name}: wrote {written} bytes, expected {expected}")


def read_npy_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the ``.npy`` stream ``f``, which is left at the data."""
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read(f)
    return tuple(int(d) for d in shape), bool(fortran), np.dtype(dtype)


def member_crcs(zf: zipfile.ZipFile, exclude: Iterable[str] = ()) -> str:
    """``name:crc:size`` of each member (sorted, ``;``-joined): the content, from the zip index."""
    skip = set(exclude)
    members = sorted((info.filename, info.CRC, info.file_size) for info in zf.infolist()
                     if info.filename not in skip)
    return ";".join(f"{name}:{crc:08x}:{size}" for name, crc, size in members)


def read_members(zf: zipfile.ZipFile, skip: Iterable[str] = ()) -> None:
    """Reads members to their end, in chunks: zipfile then checks each one's CRC-32.

    Args:
      zf: The open zip.
      skip: Member names not to read (e.g. one already streamed to its end).

    Raises:
      zipfile.BadZipFile: A member whose bytes do not match its stored CRC-32
        (``Bad CRC-32 for file 'imgs.npy'``), or a broken local header.
      zlib.error, EOFError: A damaged or cut-off compressed member.
    """
    skipped = set(skip)
    for info in zf.infolist():
        if info.filename in skipped:
            continue
        with zf.open(info) as member:
            drain(member)


def drain(member: BinaryIO) -> None:
    """Reads an open zip member to its end, in chunks: zipfile checks its CRC-32 there.

    Raises:
      As :func:`read_members`, for a damaged member.
    """
    while member.read(_READ_CHUNK):
        pass
