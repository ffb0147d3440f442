"""Atomic file writes: readers see the old file or the whole new one, never half.

Every file the plugin produces that someone may read while it is being written
(a dataset, a job's completion marker, the start-up hook's .pth) goes through
:func:`atomic_path`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yields a temporary path beside ``path``; moves it into place on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed
    and ``path`` is left as it was.

    Args:
      path: The destination file; its directory must exist.
      suffix: Appended to the temporary name, for writers that insist on an
        extension (``np.savez`` adds ``.npz`` otherwise).
    """
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """Writes ``data`` as sorted, indented JSON, atomically and durably."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
