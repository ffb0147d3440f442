"""Atomic, durable file writes: readers see the old file or the whole new one, never half.

Every file the plugin produces that someone may read while it is being written
(a dataset, a job's completion marker, the start-up hook's .pth) goes through
:func:`atomic_path`. The new file's bytes are flushed to disk before it takes
the final name, and the rename itself is flushed after: after a power loss
the name holds the old file or the complete new one, never an empty or
partial file (a rename can reach the disk before the data it names).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator


def _fsync_path(path: str) -> None:
    """Flushes a closed file's data (or a directory's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yields a temporary path beside ``path``; moves it into place on success.

    The caller writes and closes the temporary file inside the ``with`` block;
    on exit it is fsynced, renamed to ``path`` and the directory is fsynced
    (best effort: some file systems cannot fsync a directory). On any
    exception (KeyboardInterrupt included) the temporary file is removed and
    ``path`` is left as it was.

    Args:
      path: The destination file; its directory must exist.
      suffix: Appended to the temporary name, for writers that insist on an
        extension (``np.savez`` adds ``.npz`` otherwise).
    """
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}{suffix}"
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    with contextlib.suppress(OSError):
        _fsync_path(os.path.dirname(os.path.abspath(path)))


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """Writes ``data`` as sorted, indented JSON, atomically and durably."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
