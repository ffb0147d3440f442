"""Dataset files are durable before they take their final name (``splitenc_plugin._io``).

A rename can reach the disk before the data it names: without an fsync of the
new file before ``os.replace``, a power loss can leave a dataset or cache file
under its final name but empty. These tests record the order of the real
``os.fsync`` / ``os.replace`` calls a writer makes (the calls still happen).
"""

from __future__ import annotations

import os
import stat

import pytest

from splitenc_plugin import _io
from splitenc_plugin.data import dsprites

SUBSET = {"shape": [0], "scale": [0], "orientation": [0], "posX": [0, 1], "posY": [0]}


@pytest.fixture
def events(monkeypatch) -> list[tuple]:
    """Records ("fsync", inode, is_dir) and ("replace", inode of the source, dest)."""
    log: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        log.append(("fsync", st.st_ino, stat.S_ISDIR(st.st_mode)))
        real_fsync(fd)

    def replace(src, dst) -> None:
        log.append(("replace", os.stat(src).st_ino, os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return log


def _assert_durable(log: list[tuple], path: str) -> None:
    inode, directory = os.stat(path).st_ino, os.stat(os.path.dirname(path)).st_ino
    moves = [i for i, e in enumerate(log) if e[0] == "replace" and e[2] == path]
    assert len(moves) == 1, log
    move = moves[0]
    assert log[move][1] == inode
    # The file's data is flushed once, before it takes its name ...
    assert [e for e in log[:move] if e == ("fsync", inode, False)] == [("fsync", inode, False)]
    # ... and the rename (the directory entry) after.
    assert ("fsync", directory, True) in log[move + 1:], log


def test_a_generated_dataset_is_flushed_before_and_after_its_rename(tmp_path, events) -> None:
    path = dsprites.generate_dsprites(str(tmp_path), subset=SUBSET)
    _assert_durable(events, path)


def test_json_is_flushed_once_before_and_after_its_rename(tmp_path, events) -> None:
    path = str(tmp_path / "done.json")
    _io.write_json_atomic(path, {"b": 1, "a": [2]})
    _assert_durable(events, path)
    with open(path) as f:
        assert f.read() == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    path = tmp_path / "f.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), _io.atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write("new, half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.json"]
