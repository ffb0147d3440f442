"""Memory-lean dSprites-family and Shapes3D data for dlib: compact images, converted per batch.

dlib 1.5's loaders hold their image arrays in the widest form they will ever
need, and build them the expensive way:

* ``dsprites.DSprites`` (``dsprites_full``, ``dsprites_noshape``,
  ``color_dsprites``, ``noisy_dsprites``, ``scream_dsprites``) decompresses the
  737,280 x 64 x 64 uint8 images (3.0 GB) and copies them (``np.array``): a
  6 GB peak, 3 GB held. The pixels are 0/1.
* ``shapes3d.Shapes3D`` converts 480,000 x 64 x 64 x 3 uint8 images (5.9 GB)
  to float32 (23.6 GB), holding both for a while: it cannot run on 24 GB.
* ``train()`` builds the dataset twice (once more for ``observation_shape``).

When any dlib process imports those dlib modules, the compat layer
(:mod:`splitenc_plugin.compat.data`: a fix of dlib's memory use, applied
whatever the gin config, like the other compat fixes) calls :func:`install`,
which wraps the two constructors in place (every dlib subclass, ``ColorDSprites`` ...
``AbstractDSprites``, goes through ``DSprites.__init__``) so that they keep:

* dSprites: the images **bit-packed**, ``(737280, 64, 8)`` uint8 = 377 MB
  (:class:`PackedBinaryImages`), unpacked per batch to the 0/1 uint8 images
  dlib's ``sample_observations_from_factors_no_color`` then casts to float32.
  The packed array is built by streaming the npz (never the 3 GB array) and
  kept in a disk cache (:func:`cache_dir`), which later processes map
  read-only: a start-up costs a 377 MB map instead of two 3 GB
  decompressions, and all jobs of a machine share its pages. A file whose
  pixels are not all 0/1 is kept as plain uint8 (one copy, not two).
* Shapes3D: the images as **uint8** (:class:`ScaledUint8Images`), converted per
  batch with dlib's own arithmetic (``astype(np.float32) / 255.``). An npz
  stored without compression (``np.savez``, and ``splitenc_data shapes3d``) is
  mapped read-only in place; a compressed one is streamed into memory once.

Every other attribute (``factor_sizes``, ``factor_bases``, ``state_space``,
``data_shape`` ...) is set as dlib's constructor sets it, and dlib's own
``sample_factors`` / ``sample_observations_from_factors`` run unchanged on
the compact ``images``: the same observations for the same factors, and the
same random numbers consumed, so a seed gives the same batches as stock dlib
(``tests/test_lean_data.py`` checks both image for image). The data of a
file is loaded once per process (cached by file identity), so dlib's second
construction costs nothing.

Switches (environment variables, read when a dataset is constructed):

* ``SPLITENC_LEAN_DATA=0``: dlib's own loaders, untouched (to benchmark
  stock against lean side by side, ``bench/lean_data.py``). This is the only
  switch: ``SPLITENC_PLUGIN_FEATURES=0`` (which turns off the plugin's
  features) leaves the lean loaders on.
* ``SPLITENC_DATA_CACHE=DIR``: where the packed dSprites cache lives
  (default ``$XDG_CACHE_HOME/splitenc_plugin``, else
  ``~/.cache/splitenc_plugin``); ``SPLITENC_DATA_CACHE=0`` keeps the packed
  array in process memory only. Cache files are named by the npz members'
  CRC-32s and sizes, so a regenerated dataset gets a new cache file; they
  are written atomically and can be deleted at any time.

Damaged files: stock dlib's ``np.load`` checks each member's CRC-32 as it
reads it; a mapped file is never read that way, so the lean loaders check
every member against its CRC-32 once per file identity (:func:`verify_npz`:
streamed, remembered by a marker in ``<cache dir>/verified/``) and turn any
damage into one :class:`DamagedFileError` naming the file and how to get it
again, where dlib would raise ``BadZipFile``.

Paths that are not local files (dlib's ``gfile`` also reads ``gs://``) go to
dlib's own loaders. Nothing here imports TensorFlow or dlib at import time.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import threading
import types
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from splitenc_plugin._io import atomic_path, write_json_atomic
from splitenc_plugin.data._npz import drain, member_crcs, read_members, read_npy_header
from splitenc_plugin.errors import DatasetUnavailableError, env_switch

__all__ = [
    "CACHE_ENV",
    "ENV_VAR",
    "DamagedFileError",
    "PackedBinaryImages",
    "ScaledUint8Images",
    "cache_dir",
    "enabled",
    "install",
    "load_dsprites",
    "load_shapes3d",
    "verify_npz",
]

ENV_VAR = "SPLITENC_LEAN_DATA"
CACHE_ENV = "SPLITENC_DATA_CACHE"

_DSPRITES_MODULE = "disentanglement_lib.data.ground_truth.dsprites"
_SHAPES3D_MODULE = "disentanglement_lib.data.ground_truth.shapes3d"

# dlib's hard-coded dSprites factor sizes (the full grid) and Shapes3D layout.
_DSPRITES_FULL_FACTOR_SIZES = [1, 3, 6, 40, 32, 32]
_SHAPES3D_FACTOR_SIZES = [10, 10, 10, 8, 4, 15]
_IMAGE_SIDE = 64

# Images streamed per chunk while packing (16 MB of uint8 pixels).
_CHUNK_IMAGES = 4096
# Bumped when the cache file's layout changes.
_CACHE_LAYOUT = 1


def enabled() -> bool:
    """Whether the lean loaders are on (``SPLITENC_LEAN_DATA`` is not ``0``/``false``/``off``)."""
    return env_switch(ENV_VAR, default=True)


def cache_dir() -> str | None:
    """The directory of the packed dSprites cache, or None when the disk cache is off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        value = value.strip()
        return None if value.lower() in ("", "0", "false", "off", "no") else value
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "splitenc_plugin")


# --------------------------------------------------------------------------
# Compact image stores: index them like dlib's arrays, get dlib's values.

class PackedBinaryImages:
    """0/1 images ``(n, h, w)`` uint8, stored as bits ``(n, h, ceil(w / 8))``.

    Indexing the first axis (an int, a slice or an integer array) returns the
    unpacked uint8 images, exactly the rows of the array that was packed, so
    ``images[indices].astype(np.float32)`` (dlib) sees the same values.

    Attributes:
      packed: ``(n, h, ceil(w / 8))`` uint8, bits big-endian along ``w``
        (``np.packbits``); a read-only memory map when it comes from the cache.
      shape: ``(n, h, w)``, the shape of the unpacked array.
    """

    dtype = np.dtype(np.uint8)

    def __init__(self, packed: np.ndarray, width: int) -> None:
        self.packed = packed
        self.shape = (*packed.shape[:-1], int(width))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes held (the packed array), not the unpacked size."""
        return int(self.packed.nbytes)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            raise TypeError("PackedBinaryImages indexes images (axis 0) only")
        return np.unpackbits(self.packed[key], axis=-1, count=self.shape[-1])

    def __array__(self, dtype: Any = None) -> np.ndarray:
        # Everything, unpacked (3 GB for dSprites): for compatibility only.
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class ScaledUint8Images:
    """uint8 images ``(n, ...)`` that read as dlib's ``astype(np.float32) / 255.``.

    Indexing the first axis returns float32 values computed exactly as dlib's
    Shapes3D loader computes its whole array (same cast, same division), so
    each element is bit-identical to dlib's.

    Attributes:
      raw: The uint8 array ``(n, 64, 64, 3)`` (possibly a read-only memory map).
      shape: ``raw.shape``.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw
        self.shape = tuple(raw.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes held (uint8), not the float32 size."""
        return int(self.raw.nbytes)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            raise TypeError("ScaledUint8Images indexes images (axis 0) only")
        return np.asarray(self.raw[key]).astype(np.float32) / 255.

    def __array__(self, dtype: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


# --------------------------------------------------------------------------
# Reading npz members without loading them whole.

class LeanDataError(ValueError):
    """A dataset file that the lean loader cannot read (dlib could not either)."""


def _member_header(zf: zipfile.ZipFile, name: str) -> tuple[zipfile.ZipInfo,
                                                            tuple[int, ...], np.dtype]:
    info = zf.getinfo(name + ".npy")
    with zf.open(info) as member:
        shape, fortran, dtype = read_npy_header(member)
    if fortran:
        raise LeanDataError(f"{name}.npy is stored in Fortran order")
    return info, shape, dtype


def _stored_data_offset(path: str, info: zipfile.ZipInfo) -> int | None:
    """File offset of an uncompressed npz member's array data (None if compressed)."""
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise LeanDataError(f"{path}: bad zip local header for {info.filename}")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        read_npy_header(f)
        return f.tell()


def _stream_rows(zf: zipfile.ZipFile, info: zipfile.ZipInfo, row_bytes: int,
                 rows: int) -> Any:
    """Yields ``(start, bytes)`` chunks of up to :data:`_CHUNK_IMAGES` rows of a member."""
    with zf.open(info) as member:
        read_npy_header(member)
        for start in range(0, rows, _CHUNK_IMAGES):
            count = min(_CHUNK_IMAGES, rows - start)
            data = member.read(count * row_bytes)
            if len(data) != count * row_bytes:
                raise LeanDataError(f"{info.filename} ends after {start} of {rows} rows")
            yield start, data
        # To the member's end, so that zipfile checks its CRC-32 (it does so at
        # the end only): a damaged member raises here, before it is used.
        drain(member)


def _content_key(zf: zipfile.ZipFile, kind: str) -> str:
    text = f"{kind}:v{_CACHE_LAYOUT}:" + member_crcs(zf)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# --------------------------------------------------------------------------
# Damaged files: every member's bytes checked against its stored CRC-32.

# What zipfile raises for damaged member bytes: a CRC-32 mismatch (BadZipFile),
# a broken deflate stream (zlib.error), a member cut short (EOFError).
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError)


class DamagedFileError(DatasetUnavailableError):
    """A dataset file whose bytes do not match the CRC-32s stored in it.

    Attributes:
      path: The file.
      detail: What is wrong, e.g. ``is damaged (Bad CRC-32 for file 'imgs.npy')``.
    """

    def __init__(self, path: str, exc: BaseException) -> None:
        from splitenc_plugin.data import registry  # lazy: it imports the renderer

        self.path = path
        # An OSError (EIO from a failing disk, ...) is the file unreadable, not
        # proven damaged; the fix is the same.
        self.detail = (f"cannot be read ({exc})" if isinstance(exc, OSError)
                       else f"is damaged ({exc})")
        super().__init__(f"{path} {self.detail}; dlib could not read it either. To get it "
                         f"again, {registry.how_to_get(path)}.")


def _identity(path: str) -> str:
    """A key that changes whenever the file may have changed.

    Any write changes mtime and ctime (ctime cannot be set back, unlike
    mtime); a copy or replacement is another inode. Taken before the file is
    read, so a change during the read gives another key.
    """
    st = os.stat(path)
    text = (f"{os.path.realpath(path)}:{st.st_dev}:{st.st_ino}:{st.st_size}:"
            f"{st.st_mtime_ns}:{st.st_ctime_ns}")
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# File identities verified by this process (also without a cache directory).
_VERIFIED: set[str] = set()


def _verified_marker(identity: str) -> str | None:
    directory = cache_dir()
    return os.path.join(directory, "verified", f"{identity}.json") if directory else None


def _verify(path: str, identity: str, streamed: tuple[str, ...] = ()) -> bool:
    """Checks the members not yet ``streamed`` to their end; remembers the identity.

    Returns:
      Whether anything was read (False: a marker says this identity passed).

    Raises:
      DamagedFileError: If a member is damaged.
    """
    marker = _verified_marker(identity)
    if identity in _VERIFIED or (marker and os.path.exists(marker)):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            read_members(zf, skip=streamed)
            crcs = member_crcs(zf)
    except (*_DAMAGE, OSError) as exc:
        raise DamagedFileError(path, exc) from None
    _VERIFIED.add(identity)  # this process reads it once, with or without a cache
    if marker:
        try:
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            write_json_atomic(marker, {"path": os.path.realpath(path), "members": crcs})
        except OSError:
            pass  # read-only or full cache directory: verified again next time
    return True


def verify_npz(path: str) -> bool:
    """Checks every member of an npz against its stored CRC-32, once per file identity.

    Stock dlib's ``np.load`` checks a member's CRC-32 each time it reads it;
    the lean loaders map or stream the file instead, so they check it here:
    the first time a file identity (path, inode, size, mtime, ctime) is seen,
    the whole file is read (dSprites: ~3 s; Shapes3D: its 5.9 GB at disk
    speed) and a marker named by the identity is left in
    ``<cache_dir()>/verified/``; later processes find the marker and read
    nothing. Damage that leaves the identity unchanged (the disk itself
    failing, not a write) is not seen after the first check.

    Args:
      path: The npz.

    Returns:
      Whether the file was read now (False: its identity was verified before).

    Raises:
      DamagedFileError: If a member's bytes do not match its CRC-32 (or its
        compressed stream is broken); the message says how to get it again.
    """
    return _verify(path, _identity(path))


# --------------------------------------------------------------------------
# Loaders (cached per process by file identity).

@dataclass(frozen=True)
class DSpritesData:
    """What the dSprites constructor needs from the file.

    Attributes:
      images: ``(n, 64, 64)`` 0/1 images: :class:`PackedBinaryImages`, or a
        plain uint8 array when the file's pixels are not all 0/1.
      latents_sizes: The metadata's ``latents_sizes`` (int64, 6 entries).
      source: ``"cache"``, ``"packed"`` (streamed now) or ``"uint8"``.
    """

    images: PackedBinaryImages | np.ndarray
    latents_sizes: np.ndarray
    source: str


@dataclass(frozen=True)
class Shapes3DData:
    """What the Shapes3D constructor needs from the file.

    Attributes:
      images: ``(n, 64, 64, 3)`` :class:`ScaledUint8Images`.
      num_label_columns: ``labels.shape[-1]`` (dlib's ``num_total_factors``).
      source: ``"mmap"`` (mapped in place) or ``"memory"`` (streamed).
    """

    images: ScaledUint8Images
    num_label_columns: int
    source: str


_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def _cached(kind: str, path: str, load: Callable[[str], Any]) -> Any:
    stat = os.stat(path)
    key = (kind, os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load(path)
        return _CACHE[key]


def load_dsprites(path: str) -> DSpritesData:
    """Loads a dSprites npz compactly, once per process.

    Args:
      path: The npz (``imgs`` (n, 64, 64) uint8, pickled ``metadata``).

    Returns:
      :class:`DSpritesData`; ``images[i]`` equals the file's ``imgs[i]``.
    """
    return _cached("dsprites", path, _load_dsprites)


def _load_verified(path: str, read: Callable[[str], Any], member: str,
                   streamed_from: tuple[str, ...]) -> Any:
    """``read(path)``, its damage one :class:`DamagedFileError`, then the file verified.

    ``member`` was streamed to its end (its CRC-32 checked on the way) when the
    result's ``source`` is one of ``streamed_from``; it is not read again.
    """
    identity = _identity(path)  # before the read: a change meanwhile is another identity
    try:
        data = read(path)
    except _DAMAGE as exc:
        raise DamagedFileError(path, exc) from None
    _verify(path, identity, streamed=(member,) if data.source in streamed_from else ())
    return data


def _load_dsprites(path: str) -> DSpritesData:
    # A cache hit read nothing of imgs; packing it (or keeping uint8) streamed it.
    return _load_verified(path, _read_dsprites, "imgs.npy", ("packed", "uint8"))


def _read_dsprites(path: str) -> DSpritesData:
    with np.load(path, encoding="latin1", allow_pickle=True) as data:
        sizes = np.array(data["metadata"][()]["latents_sizes"], dtype=np.int64)
    with zipfile.ZipFile(path) as zf:
        info, shape, dtype = _member_header(zf, "imgs")
        if dtype != np.uint8 or len(shape) != 3:
            raise LeanDataError(f"{path}: imgs is {dtype}{list(shape)}, expected uint8 (n, h, w)")
        n, height, width = shape
        packed_shape = (n, height, (width + 7) // 8)
        directory = cache_dir()
        cache_path = (os.path.join(directory, f"dsprites-{_content_key(zf, 'dsprites')}.npy")
                      if directory else None)
        if cache_path and os.path.exists(cache_path):
            try:
                packed = np.load(cache_path, mmap_mode="r")
                if packed.shape == packed_shape and packed.dtype == np.uint8:
                    return DSpritesData(PackedBinaryImages(packed, width), sizes, "cache")
            except (OSError, ValueError):
                pass  # unreadable cache file: rebuild it below
        packed = np.empty(packed_shape, dtype=np.uint8)
        for start, data in _stream_rows(zf, info, height * width, n):
            block = np.frombuffer(data, dtype=np.uint8).reshape(-1, height, width)
            if block.max(initial=0) > 1:
                # Not a binary file: keep plain uint8 (streamed, one copy).
                del packed
                return DSpritesData(_read_uint8(zf, info, shape), sizes, "uint8")
            packed[start:start + len(block)] = np.packbits(block, axis=-1)
    if cache_path:
        packed = _write_cache(cache_path, packed)
    return DSpritesData(PackedBinaryImages(packed, width), sizes, "packed")


def _write_cache(cache_path: str, packed: np.ndarray) -> np.ndarray:
    """Writes the packed array atomically; returns its read-only map (or ``packed``)."""
    try:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        with atomic_path(cache_path, suffix=".npy") as tmp:
            np.save(tmp, packed)
        return np.load(cache_path, mmap_mode="r")
    except OSError:
        return packed  # read-only or full cache directory: keep it in memory


def _read_uint8(zf: zipfile.ZipFile, info: zipfile.ZipInfo,
                shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape, dtype=np.uint8)
    row_bytes = int(np.prod(shape[1:]))
    flat = out.reshape(shape[0], row_bytes)
    for start, data in _stream_rows(zf, info, row_bytes, shape[0]):
        block = np.frombuffer(data, dtype=np.uint8).reshape(-1, row_bytes)
        flat[start:start + len(block)] = block
    return out


def load_shapes3d(path: str) -> Shapes3DData:
    """Loads a Shapes3D npz as uint8 (mapped in place if stored uncompressed), once per process.

    Args:
      path: The npz: ``images`` (10, 10, 10, 8, 4, 15, 64, 64, 3) uint8 (or a
        prefix block of it) and ``labels`` (..., 6).

    Returns:
      :class:`Shapes3DData`; ``images[i]`` equals dlib's
      ``images.reshape([n, 64, 64, 3]).astype(np.float32)[i] / 255.``.
    """
    return _cached("shapes3d", path, _load_shapes3d)


def _load_shapes3d(path: str) -> Shapes3DData:
    # A mapped file is read by nobody but the batches: its CRC-32s are checked here.
    return _load_verified(path, _read_shapes3d, "images.npy", ("memory",))


def _read_shapes3d(path: str) -> Shapes3DData:
    with zipfile.ZipFile(path) as zf:
        info, shape, dtype = _member_header(zf, "images")
        _, label_shape, _ = _member_header(zf, "labels")
        if dtype != np.uint8 or len(shape) < 3:
            raise LeanDataError(f"{path}: images is {dtype}{list(shape)}, expected uint8")
        n = int(np.prod(shape[:6]))
        flat_shape = (n, _IMAGE_SIDE, _IMAGE_SIDE, 3)
        if int(np.prod(shape)) != int(np.prod(flat_shape)):
            raise LeanDataError(f"{path}: images {list(shape)} cannot be reshaped to "
                                f"{list(flat_shape)} (dlib's layout)")
        offset = _stored_data_offset(path, info)
        if offset is not None:
            raw = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=flat_shape)
            source = "mmap"
        else:
            raw = _read_uint8(zf, info, flat_shape)
            source = "memory"
    return Shapes3DData(ScaledUint8Images(raw), int(label_shape[-1]), source)


# --------------------------------------------------------------------------
# The patches.

def _is_local_file(path: str) -> bool:
    return "://" not in path and os.path.isfile(path)


def _lean_dsprites_init(module: types.ModuleType, original: Callable) -> Callable:
    @functools.wraps(original)
    def __init__(self, latent_factor_indices=None):
        path = module.DSPRITES_PATH  # dlib's own global, as its constructor reads it
        if not enabled() or not _is_local_file(path):
            return original(self, latent_factor_indices)
        data = load_dsprites(path)
        # The attributes dlib's DSprites.__init__ sets, with compact images.
        if latent_factor_indices is None:
            latent_factor_indices = list(range(6))
        self.latent_factor_indices = latent_factor_indices
        self.data_shape = [_IMAGE_SIDE, _IMAGE_SIDE, 1]
        self.images = data.images
        self.factor_sizes = data.latents_sizes.copy()
        self.full_factor_sizes = list(_DSPRITES_FULL_FACTOR_SIZES)
        self.factor_bases = np.prod(self.factor_sizes) / np.cumprod(self.factor_sizes)
        self.state_space = module.util.SplitDiscreteStateSpace(self.factor_sizes,
                                                               self.latent_factor_indices)
        return None

    __init__._splitenc_patched = True  # type: ignore[attr-defined]
    return __init__


def _lean_shapes3d_init(module: types.ModuleType, original: Callable) -> Callable:
    @functools.wraps(original)
    def __init__(self):
        path = module.SHAPES3D_PATH
        if not enabled() or not _is_local_file(path):
            return original(self)
        data = load_shapes3d(path)
        # The attributes dlib's Shapes3D.__init__ sets, with uint8 images.
        self.images = data.images
        self.factor_sizes = list(_SHAPES3D_FACTOR_SIZES)
        self.latent_factor_indices = list(range(6))
        self.num_total_factors = data.num_label_columns
        self.state_space = module.util.SplitDiscreteStateSpace(self.factor_sizes,
                                                               self.latent_factor_indices)
        self.factor_bases = np.prod(self.factor_sizes) / np.cumprod(self.factor_sizes)
        return None

    __init__._splitenc_patched = True  # type: ignore[attr-defined]
    return __init__


_PATCHES = {
    _DSPRITES_MODULE: ("DSprites", _lean_dsprites_init),
    _SHAPES3D_MODULE: ("Shapes3D", _lean_shapes3d_init),
}


def install(module: types.ModuleType) -> None:
    """Wraps dlib's dSprites or Shapes3D constructor in ``module`` (idempotent).

    Called by the compat layer (:mod:`splitenc_plugin.compat.data`) right
    after ``disentanglement_lib.data.ground_truth.dsprites`` / ``.shapes3d`` is
    imported, in every dlib process. The wrapped constructor defers to dlib's own when
    ``SPLITENC_LEAN_DATA=0`` or the path is not a local file.

    Args:
      module: dlib's ``dsprites`` or ``shapes3d`` module.
    """
    class_name, make_init = _PATCHES[module.__name__]
    cls = getattr(module, class_name)
    if getattr(cls.__init__, "_splitenc_patched", False):
        return
    cls.__init__ = make_init(module, cls.__init__)
