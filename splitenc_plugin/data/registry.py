"""Which files each dlib dataset reads, cheap checks of them, and how to get them.

dlib opens its dataset files deep inside the dataset constructors and fails
with raw tracebacks (``NotFoundError`` from gfile, ``KeyError`` from npz,
``ValueError: cannot reshape``...). This registry knows, for every name that
dlib's ``named_data.get_named_ground_truth_data`` accepts, which files under
the data root dlib will read, validates them without loading them (zip and
``.npy`` headers, NORB matrix headers, MAT element tags), and says how to
obtain them. :func:`require_dataset` turns any problem into one
:class:`DatasetUnavailableError` naming the dataset, the file and the fix; the
compat layer calls it before dlib builds anything.

The data root defaults to ``os.environ.get("DISENTANGLEMENT_LIB_DATA", ".")``,
exactly as dlib computes it (dlib does so once, at import time).
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from splitenc_plugin.data import dsprites as _dsprites
from splitenc_plugin.data._npz import read_npy_header
from splitenc_plugin.errors import ConfigError, DatasetUnavailableError

__all__ = [
    "DATASETS",
    "MALFORMED",
    "MISSING",
    "PRESENT",
    "DatasetSpec",
    "DatasetStatus",
    "DatasetUnavailableError",
    "UnknownDatasetError",
    "cars3d_files",
    "check_dataset",
    "dataset_files",
    "default_data_root",
    "how_to_get",
    "require_dataset",
]

PRESENT = "present"
MISSING = "missing"
MALFORMED = "malformed"

ENV_VAR = "DISENTANGLEMENT_LIB_DATA"


class UnknownDatasetError(ConfigError):
    """A dataset name that dlib's ``get_named_ground_truth_data`` does not know."""


class _Problem(Exception):
    """Raised by validators: the first file that is missing or malformed."""

    def __init__(self, status: str, path: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.path = path
        self.detail = detail


@dataclass(frozen=True)
class DatasetStatus:
    """Result of :func:`check_dataset`.

    Attributes:
      name: The dlib dataset name.
      status: ``"present"``, ``"missing"`` or ``"malformed"``.
      path: The file or directory the status is about (the first problem
        found, or the dataset's main file when present; empty if none needed).
      message: One human-readable sentence; for a problem it includes the fix.
      data_root: The data root that was checked.
      detail: What is wrong with ``path`` (e.g. ``is empty``); empty when present.
    """

    name: str
    status: str
    path: str
    message: str
    data_root: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Whether dlib can load the dataset from the checked files."""
        return self.status == PRESENT


@dataclass(frozen=True)
class DatasetSpec:
    """What the registry knows about one dlib dataset name.

    Attributes:
      name: The dlib dataset name (gin ``dataset.name``).
      description: What the dataset is.
      files: Paths relative to the data root that dlib reads (for a dataset
        whose loader lists a directory, a description such as ``cars/*.mat``).
      validate: Raises :class:`_Problem` for the first missing/malformed file.
      how_to_obtain: The fix, formatted with ``{data_root}``.
      list_files: For a loader that lists a directory (Cars3D), the files it
        reads under a data root (:func:`dataset_files`); else None.
    """

    name: str
    description: str
    files: tuple[str, ...]
    validate: Callable[[str], None]
    how_to_obtain: str
    list_files: Callable[[str], list[str]] | None = None


def default_data_root() -> str:
    """Returns the data root dlib uses: ``$DISENTANGLEMENT_LIB_DATA`` or ``"."``."""
    return os.environ.get(ENV_VAR, ".")


# --------------------------------------------------------------------------
# Low-level header readers (no payload is loaded).

def _require_file(path: str) -> int:
    """Returns the file size, or raises a missing/malformed problem."""
    if not os.path.exists(path):
        raise _Problem(MISSING, path, "not found")
    if not os.path.isfile(path):
        raise _Problem(MALFORMED, path, "is not a regular file")
    size = os.path.getsize(path)
    if size == 0:
        raise _Problem(MALFORMED, path, "is empty")
    return size


_Headers = dict[str, tuple[tuple[int, ...], np.dtype]]


def _npz_headers(path: str, required: tuple[str, ...]) -> _Headers:
    """Reads the shape and dtype of each required array of an npz from its headers."""
    size = _require_file(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {info.filename: info for info in zf.infolist()}
            for info in infos.values():
                # A member whose data would run past the end of the file means
                # the file was cut short (e.g. an interrupted copy).
                if info.header_offset + info.compress_size > size:
                    raise _Problem(MALFORMED, path, f"member {info.filename} is truncated")
            headers = {}
            for name in required:
                info = infos.get(name + ".npy")
                if info is None:
                    raise _Problem(MALFORMED, path,
                                   f"has no array {name!r} (arrays: "
                                   f"{sorted(n.removesuffix('.npy') for n in infos)})")
                with zf.open(info) as member:
                    shape, _, dtype = read_npy_header(member)
                headers[name] = (shape, dtype)
            return headers
    except _Problem:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise _Problem(MALFORMED, path,
                       f"is not a readable npz file (truncated or corrupt: {exc})") from None


def _expect_array(path: str, headers: _Headers, name: str, shape: tuple[int, ...],
                  dtype: np.dtype | type) -> None:
    got_shape, got_dtype = headers[name]
    if got_shape != tuple(shape) or got_dtype != np.dtype(dtype):
        raise _Problem(MALFORMED, path,
                       f"has {name} {got_dtype}{list(got_shape)}, dlib expects "
                       f"{np.dtype(dtype)}{list(shape)}")


# NYU "binary matrix" format of SmallNORB: int32 magic, int32 ndim, at least
# three int32 dims, then the payload. Magic -> dtype as in dlib's norb.py
# (dlib reads 0x1E3D4C55 as int8; NYU documents it as unsigned bytes).
NORB_MAGIC_UINT8 = 0x1E3D4C55
NORB_MAGIC_INT32 = 0x1E3D4C54
_NORB_ITEMSIZE = {0x1E3D4C55: 1, 0x1E3D4C54: 4, 0x1E3D4C51: 4, 0x1E3D4C53: 8}


def read_norb_header(path: str) -> tuple[int, tuple[int, ...]]:
    """Returns (magic, dims) of a NORB binary matrix file, checking its size.

    Args:
      path: The ``.mat`` file (NYU binary matrix, not a MATLAB file).

    Returns:
      The magic number and the dimensions.

    Raises:
      _Problem: If the file is missing, has an unknown magic number, or its
        size does not match its header (truncated or padded).
    """
    size = _require_file(path)
    with open(path, "rb") as f:
        head = f.read(8 + 4 * 16)
    if len(head) < 20:
        raise _Problem(MALFORMED, path, f"is {size} bytes, too short for a NORB header")
    magic, ndim = struct.unpack("<ii", head[:8])
    if magic not in _NORB_ITEMSIZE:
        raise _Problem(MALFORMED, path, f"has unknown NORB magic number {magic:#x}")
    if not 1 <= ndim <= 16:
        raise _Problem(MALFORMED, path, f"has invalid NORB ndim {ndim}")
    stored = max(3, ndim)
    dims = struct.unpack(f"<{stored}i", head[8:8 + 4 * stored])[:ndim]
    expected = 8 + 4 * stored + int(np.prod(dims, dtype=np.int64)) * _NORB_ITEMSIZE[magic]
    if size != expected:
        raise _Problem(MALFORMED, path,
                       f"is {size} bytes but its header {list(dims)} needs {expected} "
                       f"({'truncated' if size < expected else 'trailing data'})")
    return magic, tuple(dims)


def _mat_variable_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """Returns the shapes of a MATLAB v5 file's variables, checking for truncation."""
    size = _require_file(path)
    with open(path, "rb") as f:
        header = f.read(128)
        if len(header) < 128 or header[126:128] not in (b"IM", b"MI"):
            raise _Problem(MALFORMED, path, "is not a MATLAB v5 .mat file (scipy.io.loadmat "
                           "cannot read it)")
        endian = "<" if header[126:128] == b"IM" else ">"
        pos = 128
        # Walk the top-level data elements: each tag says how many bytes
        # follow, so a cut-off file is detected without reading the payload.
        while pos < size:
            f.seek(pos)
            tag = f.read(8)
            if len(tag) < 8:
                raise _Problem(MALFORMED, path, "is truncated (incomplete element tag)")
            dtype, nbytes = struct.unpack(endian + "II", tag)
            if dtype >> 16:
                # Small data element format: data lives inside the tag.
                pos += 8
                continue
            end = pos + 8 + nbytes
            if end > size:
                raise _Problem(MALFORMED, path, f"is truncated ({size} bytes, an element "
                               f"needs {end})")
            # Uncompressed elements are padded to 8 bytes; miCOMPRESSED (15) is not.
            pos = end if dtype == 15 else end + (-nbytes % 8)
    try:
        import scipy.io  # Lazy: scipy is heavy and only needed here.

        return {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(path)}
    except Exception as exc:  # noqa: BLE001  (any parse failure means malformed)
        raise _Problem(MALFORMED, path, f"cannot be parsed as a .mat file: {exc}") from None


# --------------------------------------------------------------------------
# Per-dataset validators.

DSPRITES_FILE = os.path.join(_dsprites.SUBDIR, _dsprites.FILENAME)
SCREAM_FILE = os.path.join("scream", "scream.jpg")
SMALLNORB_CHUNKS = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")
SMALLNORB_FILES = tuple(os.path.join("small_norb", f"smallnorb-{chunk}-{kind}.mat")
                        for chunk in SMALLNORB_CHUNKS for kind in ("dat", "cat", "info"))
SMALLNORB_ROWS = 24300
CARS3D_DIR = "cars"
CARS3D_NUM_CARS = 183
CARS3D_IM_TAIL = (3, 24, 4)
SHAPES3D_FILE = os.path.join(
    "3dshapes",
    "look-at-object-room_floor-hueXwall-hueXobj-hueXobj-sizeXobj-shapeXview-azi.npz")
SHAPES3D_FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
MPI3D_FACTOR_SIZES = {
    "mpi3d_toy": (4, 4, 2, 3, 3, 40, 40),
    "mpi3d_realistic": (4, 4, 2, 3, 3, 40, 40),
    "mpi3d_real": (6, 6, 2, 3, 3, 40, 40),
}


def _validate_dsprites(root: str) -> None:
    path = os.path.join(root, DSPRITES_FILE)
    headers = _npz_headers(path, ("imgs", "metadata"))
    try:
        with np.load(path, allow_pickle=True, encoding="latin1") as data:
            sizes = [int(s) for s in data["metadata"][()]["latents_sizes"]]
    except Exception as exc:  # noqa: BLE001  (anything here means dlib would fail too)
        raise _Problem(MALFORMED, path, f"has unreadable metadata ({exc})") from None
    if sizes != list(_dsprites.LATENT_SIZES):
        raise _Problem(MALFORMED, path,
                       f"has latents_sizes {sizes}, dlib expects "
                       f"{list(_dsprites.LATENT_SIZES)} (a reduced test file?)")
    n = int(np.prod(sizes))
    _expect_array(path, headers, "imgs", (n, 64, 64), np.uint8)


def _validate_scream(root: str) -> None:
    _validate_dsprites(root)
    path = os.path.join(root, SCREAM_FILE)
    _require_file(path)
    try:
        from PIL import Image  # Lazy: only this dataset needs PIL.

        with Image.open(path) as image:
            width, height = image.size
            image.load()
    except Exception as exc:  # noqa: BLE001  (any decode failure means malformed)
        raise _Problem(MALFORMED, path, f"is not a readable image ({exc})") from None
    # dlib thumbnails it to fit 350x274 and crops 64x64 patches from it.
    ratio = min(350 / width, 274 / height, 1.0)
    if min(width * ratio, height * ratio) <= 64:
        raise _Problem(MALFORMED, path, f"is {width}x{height}; too small for 64x64 crops")


def _validate_smallnorb(root: str) -> None:
    for chunk in SMALLNORB_CHUNKS:
        def path(kind: str, chunk: str = chunk) -> str:
            return os.path.join(root, "small_norb", f"smallnorb-{chunk}-{kind}.mat")

        expectations = (
            ("dat", NORB_MAGIC_UINT8, 4, "(24300, 2, H, W) bytes"),
            ("cat", NORB_MAGIC_INT32, 1, "(24300,) int32"),
            ("info", NORB_MAGIC_INT32, 2, "(24300, 4) int32"),
        )
        for kind, magic, ndim, text in expectations:
            got_magic, dims = read_norb_header(path(kind))
            ok = (got_magic == magic and len(dims) == ndim and dims[0] == SMALLNORB_ROWS
                  and (kind != "info" or dims[1] == 4) and all(d > 0 for d in dims))
            if not ok:
                raise _Problem(MALFORMED, path(kind),
                               f"has magic {got_magic:#x} and dims {list(dims)}, dlib expects "
                               f"magic {magic:#x} and {text}")


def cars3d_files(root: str) -> list[str]:
    """The files dlib's Cars3D loader reads: every name in ``<root>/cars`` containing ``.mat``.

    dlib's ``cars3d.py`` lists the directory and keeps each name with
    ``".mat" in name`` (so ``x.mat.bak`` and ``.x.mat`` count, unlike a
    ``*.mat`` glob); the validator and the fingerprint both use this rule.

    Args:
      root: The data root.

    Returns:
      Their paths, sorted; empty if the directory does not exist.
    """
    directory = os.path.join(root, CARS3D_DIR)
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join(directory, x) for x in os.listdir(directory) if ".mat" in x)


def _validate_cars3d(root: str) -> None:
    directory = os.path.join(root, CARS3D_DIR)
    if not os.path.isdir(directory):
        raise _Problem(MISSING, directory, "directory not found")
    files = [os.path.basename(path) for path in cars3d_files(root)]
    if not files:
        raise _Problem(MISSING, directory, "contains no .mat files")
    if len(files) != CARS3D_NUM_CARS:
        raise _Problem(MALFORMED, directory,
                       f"contains {len(files)} .mat files, dlib expects exactly "
                       f"{CARS3D_NUM_CARS} (one per car; fewer leave blank images, more crash)")
    for name in files:
        path = os.path.join(directory, name)
        shapes = _mat_variable_shapes(path)
        shape = shapes.get("im")
        # dlib thumbnails each view to fit 64x64 and stores it in a 64x64
        # slot, so views must be square and at least 64 pixels wide.
        if (shape is None or len(shape) != 5 or shape[2:] != CARS3D_IM_TAIL
                or shape[0] != shape[1] or shape[0] < 64):
            raise _Problem(MALFORMED, path,
                           f"has variable im {shape}, dlib expects (128, 128, 3, 24, 4)")


def _validate_shapes3d(root: str) -> None:
    path = os.path.join(root, SHAPES3D_FILE)
    headers = _npz_headers(path, ("images", "labels"))
    _expect_array(path, headers, "images", SHAPES3D_FACTOR_SIZES + (64, 64, 3), np.uint8)
    got_shape, _ = headers["labels"]
    if got_shape != SHAPES3D_FACTOR_SIZES + (6,):
        raise _Problem(MALFORMED, path, f"has labels {list(got_shape)}, dlib expects "
                       f"{list(SHAPES3D_FACTOR_SIZES + (6,))}")


def _mpi3d_validator(mode: str) -> Callable[[str], None]:
    def validate(root: str) -> None:
        path = os.path.join(root, mode, f"{mode}.npz")
        headers = _npz_headers(path, ("images",))
        n = int(np.prod(MPI3D_FACTOR_SIZES[mode]))
        _expect_array(path, headers, "images", (n, 64, 64, 3), np.uint8)
    return validate


def _no_files(root: str) -> None:
    del root  # dummy_data is random noise generated in memory.


_DOWNLOAD = ("run `dlib_download_data` inside an empty directory on a machine with "
             "internet and copy the resulting {what} into {{data_root}}")
_DSPRITES_HOW = ("generate it with `splitenc_data dsprites --output_dir {data_root}` (a "
                 "procedural re-rendering, no network needed; add --force to replace a "
                 "malformed file), or "
                 + _DOWNLOAD.format(what="dsprites/ directory"))
_DSPRITES_DESC = ("dSprites: 737,280 64x64 binary 2D shapes (shape, scale, orientation, "
                  "posX, posY)")


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("dsprites_full", _DSPRITES_DESC + "; all five factors are latent",
          (DSPRITES_FILE,), _validate_dsprites, _DSPRITES_HOW),
    DatasetSpec("dsprites_noshape", _DSPRITES_DESC + "; shape is not a latent factor",
          (DSPRITES_FILE,), _validate_dsprites, _DSPRITES_HOW),
    DatasetSpec("color_dsprites", _DSPRITES_DESC + ", sprite in a random colour",
          (DSPRITES_FILE,), _validate_dsprites, _DSPRITES_HOW),
    DatasetSpec("noisy_dsprites", _DSPRITES_DESC + ", uniform-noise background",
          (DSPRITES_FILE,), _validate_dsprites, _DSPRITES_HOW),
    DatasetSpec("scream_dsprites", _DSPRITES_DESC + ", on patches of Munch's The Scream",
          (DSPRITES_FILE, SCREAM_FILE), _validate_scream,
          "for dsprites/ " + _DSPRITES_HOW + "; for scream/scream.jpg "
          + _DOWNLOAD.format(what="scream/ directory")),
    DatasetSpec("smallnorb", "SmallNORB: 48,600 photos of toys (category, elevation, azimuth, "
          "lighting), resized to 64x64", SMALLNORB_FILES, _validate_smallnorb,
          _DOWNLOAD.format(what="small_norb/ directory (six .mat files)")),
    DatasetSpec("cars3d", "Cars3D: 183 car CAD models x 4 elevations x 24 azimuths, 64x64 RGB",
          (CARS3D_DIR + "/*.mat",), _validate_cars3d,
          _DOWNLOAD.format(what="cars/ directory (183 .mat files)"), cars3d_files),
    DatasetSpec("mpi3d_toy", "MPI3D toy: 460,800 simulated 64x64 RGB images of a robot arm",
          (os.path.join("mpi3d_toy", "mpi3d_toy.npz"),), _mpi3d_validator("mpi3d_toy"),
          _DOWNLOAD.format(what="mpi3d_toy/ directory")),
    DatasetSpec("mpi3d_realistic", "MPI3D realistic: 460,800 realistic renders of the robot arm",
          (os.path.join("mpi3d_realistic", "mpi3d_realistic.npz"),),
          _mpi3d_validator("mpi3d_realistic"),
          "dlib_download_data does not fetch it: on a machine with internet download "
          "mpi3d_realistic.npz from the MPI3D dataset (github.com/rr-learning/"
          "disentanglement_dataset) and copy it to {data_root}/mpi3d_realistic/"),
    DatasetSpec("mpi3d_real", "MPI3D real: 1,036,800 camera images of the real robot arm",
          (os.path.join("mpi3d_real", "mpi3d_real.npz"),), _mpi3d_validator("mpi3d_real"),
          "dlib_download_data does not fetch it: on a machine with internet download "
          "mpi3d_real.npz from the MPI3D dataset (github.com/rr-learning/"
          "disentanglement_dataset) and copy it to {data_root}/mpi3d_real/"),
    DatasetSpec("shapes3d", "3dshapes: 480,000 64x64 RGB renders (floor, wall and object hue, "
          "size, shape, azimuth)", (SHAPES3D_FILE,), _validate_shapes3d,
          "dlib_download_data does not fetch it: on a machine with internet download "
          "3dshapes.h5 (github.com/deepmind/3d-shapes), then run splitenc_data shapes3d "
          "--from 3dshapes.h5 --output_dir {data_root} (it checks the factor layout and "
          "writes {data_root}/" + SHAPES3D_FILE + ")"),
    DatasetSpec("dummy_data", "Random noise, 10 factors of 5 values (for tests); needs no files",
          (), _no_files, "nothing to do"),
)}


def _spec_for(name: str) -> DatasetSpec:
    spec = DATASETS.get(name)
    if spec is None:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; dlib knows: {', '.join(DATASETS)}")
    return spec


def dataset_files(name: str, data_root: str | None = None) -> list[str]:
    """The paths of the files dlib reads for ``name`` that exist under the data root.

    Args:
      name: A dlib dataset name.
      data_root: Defaults to ``$DISENTANGLEMENT_LIB_DATA`` or ``"."``, like dlib.

    Raises:
      UnknownDatasetError: If dlib does not know ``name``.
    """
    spec = _spec_for(name)
    root = default_data_root() if data_root is None else data_root
    if spec.list_files is not None:  # a directory listing, not fixed names
        return spec.list_files(root)
    return [path for path in (os.path.join(root, f) for f in spec.files)
            if os.path.exists(path)]


def how_to_get(path: str) -> str:
    """How to get the dataset file ``path`` (a file some dataset reads) again."""
    full = os.path.abspath(path)
    for spec in DATASETS.values():
        for relative in spec.files:
            tail = os.sep + os.path.normpath(relative)
            if full.endswith(tail):
                return spec.how_to_obtain.format(data_root=full[:-len(tail)])
    return "copy it again from where it came from"


def _verify_contents(name: str, root: str) -> None:
    """Raises a malformed problem for the first npz whose bytes fail their CRC-32."""
    from splitenc_plugin.data import lean_data  # lazy: it owns the verified markers

    for path in dataset_files(name, root):
        if path.endswith(".npz"):
            try:
                lean_data.verify_npz(path)
            except lean_data.DamagedFileError as exc:
                raise _Problem(MALFORMED, path, exc.detail) from None


def check_dataset(name: str, data_root: str | None = None,
                  verify: bool = False) -> DatasetStatus:
    """Checks whether the files dlib reads for ``name`` are present and well formed.

    The check is cheap: it reads headers only (zip/npy headers, NORB headers,
    MAT element tags), never the image payloads. With ``verify``, it also
    reads every npz member against its stored CRC-32 (as dlib's ``np.load``
    would), once per file identity (:func:`lean_data.verify_npz
    <splitenc_plugin.data.lean_data.verify_npz>`: seconds the first time,
    nothing later).

    Args:
      name: A dlib dataset name, e.g. ``"dsprites_full"``.
      data_root: The data root; defaults to ``$DISENTANGLEMENT_LIB_DATA`` or
        ``"."`` like dlib.
      verify: Also check the npz files' content against their CRC-32s.

    Returns:
      The :class:`DatasetStatus`.

    Raises:
      UnknownDatasetError: If dlib does not know ``name``.
    """
    spec = _spec_for(name)
    root = default_data_root() if data_root is None else data_root
    try:
        spec.validate(root)
        if verify:
            _verify_contents(name, root)
    except _Problem as problem:
        how = spec.how_to_obtain.format(data_root=os.path.abspath(root))
        if data_root is not None:
            where = f"data root {root}"
        elif ENV_VAR in os.environ:
            where = f"{ENV_VAR}={root}"
        else:
            where = f"data root {root!r}: {ENV_VAR} is not set"
        message = (f"dataset {name!r} is {problem.status}: {problem.path} {problem.detail} "
                   f"({where}). To get it, {how}.")
        return DatasetStatus(name, problem.status, problem.path, message, root, problem.detail)
    main = os.path.join(root, spec.files[0]) if spec.files else ""
    return DatasetStatus(name, PRESENT, main, f"dataset {name!r} is present", root)


def require_dataset(name: str, data_root: str | None = None) -> None:
    """Raises one clear error if dlib cannot load ``name`` from the data root.

    Args:
      name: A dlib dataset name.
      data_root: The data root; defaults to ``$DISENTANGLEMENT_LIB_DATA`` or
        ``"."`` like dlib.

    Raises:
      DatasetUnavailableError: If a file is missing or malformed; the message
        names the dataset, the file, the data root and the fix.
      UnknownDatasetError: If dlib does not know ``name``.
    """
    status = check_dataset(name, data_root)
    if not status.ok:
        raise DatasetUnavailableError(status.message)
