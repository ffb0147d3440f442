"""The identity of the data a job trained on: one record, computed once, compared everywhere.

Every finished job records in ``done.json["data"]`` what
:func:`data_identity` returned for its dataset when it ran::

    {"dataset": "dsprites_full",
     "fingerprint": "splitenc-dsprites-v2:1f0c...",   # compared
     "label": "splitenc dSprites renderer v2",         # shown in results
     "files": {"dsprites/dsprites_ndarray_...npz": "crc:..."}}

The runner refuses to count a finished job as done when its fingerprint differs
from the current data's (:func:`same_data`); the aggregator splits cells by
:func:`recorded_identity`'s fingerprint (and shows its label), so runs on two
versions of a data set are never pooled.

How a fingerprint is computed:

* ``.npz`` files (dSprites, Shapes3D): the CRC-32 and uncompressed size of each
  array member, read from the zip directory (no payload is read, and
  re-compressing with another zlib does not change it). For dSprites the
  renderer version written in the file's metadata prefixes it:
  ``splitenc-dsprites-v2:...`` for ours, ``deepmind-dsprites:...`` for a file
  without our ``rendering`` metadata (DeepMind's own).
* other files (SmallNORB's and Cars3D's ``.mat`` files, scream.jpg): SHA-256
  of their bytes.
* ``dummy_data`` (dlib's in-memory random data): the constant ``dummy_data``.

Jobs finished before data fingerprints existed have no ``data`` record. The
documented rule (:func:`recorded_identity`): such a dSprites-family job was
made on the plugin's first renderer (``splitenc-dsprites-v1``: until the
fingerprint was introduced it was the only dSprites the project could make);
any other dataset is ``unrecorded`` and matches nothing.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Mapping

import numpy as np

from splitenc_plugin.data._npz import member_crcs

__all__ = [
    "LEGACY_DSPRITES",
    "UNRECORDED",
    "data_identity",
    "dsprites_renderer_version",
    "recorded_identity",
    "same_data",
]

# dlib datasets that read the dSprites file (the scream variant reads one more).
DSPRITES_FAMILY = ("dsprites_full", "dsprites_noshape", "color_dsprites", "noisy_dsprites",
                   "scream_dsprites")

# What a job without a data record was made on (see the module docstring).
LEGACY_DSPRITES = {
    "fingerprint": "splitenc-dsprites-v1",
    "label": "splitenc dSprites renderer v1 (before data fingerprints)",
    "files": {},
}
UNRECORDED = {"fingerprint": "unrecorded", "label": "unrecorded (before data fingerprints)",
              "files": {}}

_CHUNK = 1 << 22


def _npz_digest(path: str) -> str:
    with zipfile.ZipFile(path) as zf:
        text = member_crcs(zf, exclude=("metadata.npy",))
    return "crc:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]


def dsprites_renderer_version(path: str) -> int | None:
    """The version of the splitenc renderer that made a dSprites file; None if not ours.

    Read from the file's ``rendering`` metadata; the first renderer wrote that
    metadata without a version (1). A file without it (DeepMind's) is None.
    """
    with np.load(path, allow_pickle=True, encoding="latin1") as data:
        metadata = data["metadata"][()]
    rendering = metadata.get("rendering") if isinstance(metadata, dict) else None
    if not isinstance(rendering, dict):
        return None
    return int(rendering.get("renderer_version", 1))


def _dsprites_source(path: str) -> tuple[str, str]:
    """(fingerprint prefix, label) of a dSprites file, from its metadata."""
    version = dsprites_renderer_version(path)
    if version is None:
        return "deepmind-dsprites", "DeepMind dSprites file"
    return f"splitenc-dsprites-v{version}", f"splitenc dSprites renderer v{version}"


def data_identity(name: str, data_root: str | None = None) -> dict:
    """The identity of dataset ``name`` as it is now under the data root.

    Args:
      name: A dlib dataset name (``dataset.name``).
      data_root: Defaults to ``$DISENTANGLEMENT_LIB_DATA`` or ``"."``, like dlib.

    Returns:
      ``{"dataset", "fingerprint", "label", "files"}``; ``files`` maps each
      file (relative to the data root) to its digest.

    Raises:
      DatasetUnavailableError: If the dataset's files are missing or malformed
        (the message says how to get them).
    """
    from splitenc_plugin.data import registry

    if name == "dummy_data":
        return {"dataset": name, "fingerprint": "dummy_data", "label": "dlib dummy_data",
                "files": {}}
    registry.require_dataset(name, data_root)
    root = registry.default_data_root() if data_root is None else data_root
    files: dict[str, str] = {}
    for path in registry.dataset_files(name, root):
        relative = os.path.relpath(path, root)
        files[relative] = _npz_digest(path) if path.endswith(".npz") else _file_digest(path)
    combined = hashlib.sha256(
        ";".join(f"{k}={v}" for k, v in sorted(files.items())).encode()).hexdigest()[:16]
    if name in DSPRITES_FAMILY:
        prefix, label = _dsprites_source(os.path.join(root, registry.DSPRITES_FILE))
    else:
        prefix, label = name, f"{name} files"
    return {"dataset": name, "fingerprint": f"{prefix}:{combined}",
            "label": f"{label} ({combined[:8]})", "files": files}


def recorded_identity(done: Mapping) -> dict:
    """The data identity a finished job recorded, or the documented legacy rule.

    Args:
      done: A job's ``done.json`` content.

    Returns:
      The recorded ``data`` dict; for a job finished before fingerprints
      existed, :data:`LEGACY_DSPRITES` (dSprites family) or :data:`UNRECORDED`,
      with the job's dataset filled in.
    """
    record = done.get("data")
    if isinstance(record, Mapping) and "fingerprint" in record:
        return dict(record)
    dataset = (done.get("spec") or {}).get("dataset", "")
    legacy = LEGACY_DSPRITES if dataset in DSPRITES_FAMILY else UNRECORDED
    return {"dataset": dataset, **legacy}


def same_data(recorded: Mapping, current: Mapping) -> bool:
    """Whether a job recorded on ``recorded`` data counts for the ``current`` data."""
    return recorded.get("fingerprint") == current.get("fingerprint")
