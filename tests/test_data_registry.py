"""Tests of the dataset registry, ``require_dataset`` and ``splitenc_data check``.

These run without dlib or TensorFlow: the registry reads headers only, and
the fixtures are written by ``tests/data_fixtures.py``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys

import data_fixtures as fixtures
import numpy as np
import pytest
import scipy.io
from conftest import assert_ok, run_script
from PIL import Image

from splitenc_plugin.data import cli, dsprites, registry
from splitenc_plugin.errors import DatasetUnavailableError

DLIB_NAMES = ["dsprites_full", "dsprites_noshape", "color_dsprites", "noisy_dsprites",
              "scream_dsprites", "smallnorb", "cars3d", "mpi3d_toy", "mpi3d_realistic",
              "mpi3d_real", "shapes3d", "dummy_data"]
SUBSET = {"orientation": [0, 20], "posX": [0, 31], "posY": [5]}
SUBSET_SIZES = (1, 3, 6, 2, 2, 1)
NORB_TRAIN_DAT = os.path.join(
    "small_norb", "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat")
NORB_TEST_INFO = os.path.join(
    "small_norb", "smallnorb-5x01235x9x18x6x2x96x96-testing-info.mat")


def _truncate(path: str, keep: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(keep)


def _assert_clear_error(exc: DatasetUnavailableError, name: str, path: str, fix: str) -> None:
    message = str(exc)
    assert f"'{name}'" in message
    assert path in message
    assert fix in message
    assert "\n" not in message


# --------------------------------------------------------------------------
# The registry itself.

def test_registry_knows_exactly_dlibs_dataset_names() -> None:
    assert list(registry.DATASETS) == DLIB_NAMES
    spec = importlib.util.find_spec("disentanglement_lib")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("disentanglement_lib is not installed")
    source_path = os.path.join(spec.submodule_search_locations[0], "data", "ground_truth",
                               "named_data.py")
    with open(source_path) as f:
        dlib_names = re.findall(r'name == "(\w+)"', f.read())
    assert dlib_names == DLIB_NAMES


def test_data_modules_import_neither_tensorflow_nor_dlib() -> None:
    # splitenc_data must start fast and work without a working TF install.
    code = ("import sys\n"
            "import splitenc_plugin.data.cli, splitenc_plugin.data.registry\n"
            "print('HEAVY', [m for m in ('tensorflow', 'disentanglement_lib') "
            "if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY []" in proc.stdout, proc.stdout


def test_unknown_dataset_lists_the_valid_names(tmp_path) -> None:
    with pytest.raises(registry.UnknownDatasetError) as info:
        registry.require_dataset("dsprite_full", str(tmp_path))
    assert isinstance(info.value, ValueError)
    assert "'dsprite_full'" in str(info.value)
    assert all(name in str(info.value) for name in DLIB_NAMES)


def test_dummy_data_needs_no_files(tmp_path) -> None:
    status = registry.check_dataset("dummy_data", str(tmp_path))
    assert status.ok and status.status == registry.PRESENT
    registry.require_dataset("dummy_data", str(tmp_path))


def test_data_root_defaults_to_the_env_var_like_dlib(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DISENTANGLEMENT_LIB_DATA", str(tmp_path))
    status = registry.check_dataset("smallnorb")
    assert status.data_root == str(tmp_path)
    assert status.path == os.path.join(str(tmp_path), NORB_TRAIN_DAT)
    assert f"DISENTANGLEMENT_LIB_DATA={tmp_path}" in status.message
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA")
    monkeypatch.chdir(tmp_path)
    status = registry.check_dataset("smallnorb")
    assert status.data_root == "."
    assert status.path == os.path.join(".", NORB_TRAIN_DAT)
    assert "DISENTANGLEMENT_LIB_DATA is not set" in status.message


# --------------------------------------------------------------------------
# dSprites.

def test_missing_dsprites_says_how_to_generate_it(tmp_path) -> None:
    root = str(tmp_path)
    path = os.path.join(root, "dsprites", dsprites.FILENAME)
    for name in ("dsprites_full", "dsprites_noshape", "color_dsprites", "noisy_dsprites"):
        assert registry.check_dataset(name, root).status == registry.MISSING
        with pytest.raises(DatasetUnavailableError) as info:
            registry.require_dataset(name, root)
        _assert_clear_error(info.value, name, path,
                            f"splitenc_data dsprites --output_dir {os.path.abspath(root)}")
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, FileNotFoundError)


def test_reduced_dsprites_file_is_malformed(tmp_path) -> None:
    dsprites.generate_dsprites(str(tmp_path), subset=SUBSET)
    status = registry.check_dataset("dsprites_full", str(tmp_path))
    assert status.status == registry.MALFORMED
    assert "latents_sizes [1, 3, 6, 2, 2, 1]" in status.message


def test_valid_dsprites_layout_is_present(tmp_path, monkeypatch) -> None:
    # The full file takes ~15 s to write (see the SPLITENC_FULL_DATA test);
    # here the registry is told the subset's sizes are the expected ones, so
    # the same header checks run on a small file.
    dsprites.generate_dsprites(str(tmp_path), subset=SUBSET)
    monkeypatch.setattr(dsprites, "LATENT_SIZES", SUBSET_SIZES)
    status = registry.check_dataset("dsprites_full", str(tmp_path))
    assert status.ok, status.message
    assert status.path == os.path.join(str(tmp_path), "dsprites", dsprites.FILENAME)


def test_truncated_dsprites_gives_the_clear_error(tmp_path) -> None:
    path = dsprites.generate_dsprites(str(tmp_path), subset=SUBSET)
    _truncate(path, os.path.getsize(path) // 2)
    with pytest.raises(DatasetUnavailableError) as info:
        registry.require_dataset("dsprites_full", str(tmp_path))
    _assert_clear_error(info.value, "dsprites_full", path, "splitenc_data dsprites")
    assert "malformed" in str(info.value) and "truncated" in str(info.value)


def test_dsprites_without_metadata_is_malformed(tmp_path) -> None:
    path = os.path.join(str(tmp_path), "dsprites", dsprites.FILENAME)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        np.savez(f, imgs=np.zeros((2, 64, 64), np.uint8))
    status = registry.check_dataset("dsprites_full", str(tmp_path))
    assert status.status == registry.MALFORMED
    assert "has no array 'metadata'" in status.message


def test_scream_dsprites_checks_the_scream_image(tmp_path, monkeypatch) -> None:
    root = str(tmp_path)
    dsprites.generate_dsprites(root, subset=SUBSET)
    monkeypatch.setattr(dsprites, "LATENT_SIZES", SUBSET_SIZES)
    scream = os.path.join(root, "scream", "scream.jpg")
    status = registry.check_dataset("scream_dsprites", root)
    assert status.status == registry.MISSING and status.path == scream
    assert "dlib_download_data" in status.message
    os.makedirs(os.path.dirname(scream))
    Image.new("RGB", (60, 60)).save(scream)
    assert "too small" in registry.check_dataset("scream_dsprites", root).message
    Image.new("RGB", (700, 548), (200, 30, 30)).save(scream)
    assert registry.check_dataset("scream_dsprites", root).ok
    _truncate(scream, os.path.getsize(scream) // 2)
    assert registry.check_dataset("scream_dsprites", root).status == registry.MALFORMED


# --------------------------------------------------------------------------
# SmallNORB.

@pytest.fixture(scope="module")
def norb_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("norb"))
    fixtures.write_smallnorb_fixture(root, image_size=4)
    return root


def _copy_tree(src: str, dst: str) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)


def _append_bytes(path: str) -> None:
    with open(path, "ab") as f:
        f.write(b"\0" * 8)


def _overwrite_magic(path: str) -> None:
    with open(path, "r+b") as f:
        f.write((0x12345678).to_bytes(4, "little"))


def test_smallnorb_fixture_is_present(norb_root) -> None:
    status = registry.check_dataset("smallnorb", norb_root)
    assert status.ok, status.message
    magic, dims = registry.read_norb_header(os.path.join(norb_root, NORB_TRAIN_DAT))
    assert (magic, dims) == (0x1E3D4C55, (24300, 2, 4, 4))


def test_missing_smallnorb_file_is_named(tmp_path, norb_root) -> None:
    _copy_tree(norb_root, str(tmp_path))
    missing = os.path.join(str(tmp_path), NORB_TEST_INFO)
    os.remove(missing)
    with pytest.raises(DatasetUnavailableError) as info:
        registry.require_dataset("smallnorb", str(tmp_path))
    _assert_clear_error(info.value, "smallnorb", missing, "dlib_download_data")
    assert "is missing" in str(info.value)


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda p: _truncate(p, os.path.getsize(p) - 100), "truncated"),
    (lambda p: _truncate(p, 10), "too short for a NORB header"),
    (_append_bytes, "trailing data"),
    (_overwrite_magic, "unknown NORB magic number 0x12345678"),
])
def test_damaged_smallnorb_gives_the_clear_error(tmp_path, norb_root, damage, expected) -> None:
    _copy_tree(norb_root, str(tmp_path))
    path = os.path.join(str(tmp_path), NORB_TRAIN_DAT)
    damage(path)
    with pytest.raises(DatasetUnavailableError) as info:
        registry.require_dataset("smallnorb", str(tmp_path))
    _assert_clear_error(info.value, "smallnorb", path, "dlib_download_data")
    assert "malformed" in str(info.value) and expected in str(info.value)


# --------------------------------------------------------------------------
# Cars3D.

def test_cars3d_needs_all_183_well_formed_files(tmp_path) -> None:
    root = str(tmp_path)
    directory = os.path.join(root, "cars")
    assert registry.check_dataset("cars3d", root).status == registry.MISSING
    paths = fixtures.write_cars3d_fixture(root, num_cars=183, image_size=64)
    assert len(paths) == 183 and os.path.basename(paths[0]) == "car_001_mesh.mat"
    assert registry.check_dataset("cars3d", root).ok
    im = scipy.io.loadmat(paths[5])["im"]
    assert im.shape == (64, 64, 3, 24, 4) and im.dtype == np.uint8
    np.testing.assert_array_equal(im[10, 20, :, 7, 2], [40 + 50 * 2, 10 * 7, 1 + 5])
    # Views smaller than dlib's 64x64 slots would crash its loader.
    scipy.io.savemat(paths[7], {"im": np.zeros((32, 32, 3, 24, 4), np.uint8)})
    status = registry.check_dataset("cars3d", root)
    assert status.status == registry.MALFORMED and status.path == paths[7]
    assert "(32, 32, 3, 24, 4)" in status.message
    fixtures.write_cars3d_fixture(root, num_cars=183, image_size=64)
    # Truncated .mat file.
    _truncate(paths[7], os.path.getsize(paths[7]) - 20)
    status = registry.check_dataset("cars3d", root)
    assert status.status == registry.MALFORMED and status.path == paths[7]
    assert "truncated" in status.message
    # A .mat file without the variable dlib reads.
    scipy.io.savemat(paths[7], {"images": np.zeros((2, 2))})
    status = registry.check_dataset("cars3d", root)
    assert status.status == registry.MALFORMED and "variable im None" in status.message
    # Too few files.
    for path in paths[3:]:
        os.remove(path)
    status = registry.check_dataset("cars3d", root)
    assert status.status == registry.MALFORMED and status.path == directory
    assert "contains 3 .mat files" in status.message


def test_cars3d_fingerprint_covers_every_file_dlib_reads(tmp_path) -> None:
    # dlib's cars3d.py reads every name in cars/ that contains ".mat", so a
    # car stored as car_183_mesh.mat.v2 is trained on: its bytes must be in
    # the fingerprint (a cars/*.mat glob missed it).
    from splitenc_plugin.data import fingerprint

    root = str(tmp_path)
    paths = fixtures.write_cars3d_fixture(root, num_cars=183, image_size=64)
    renamed = paths[-1] + ".v2"
    os.rename(paths[-1], renamed)
    assert registry.check_dataset("cars3d", root).ok
    before = fingerprint.data_identity("cars3d", root)
    assert len(before["files"]) == 183
    assert os.path.join("cars", "car_183_mesh.mat.v2") in before["files"]
    scipy.io.savemat(renamed, {"im": np.ones((64, 64, 3, 24, 4), np.uint8)})
    assert fingerprint.data_identity("cars3d", root)["fingerprint"] != before["fingerprint"]


# --------------------------------------------------------------------------
# Shapes3D and MPI3D.

def test_shapes3d_layout(tmp_path, monkeypatch) -> None:
    root = str(tmp_path)
    path = os.path.join(root, registry.SHAPES3D_FILE)
    status = registry.check_dataset("shapes3d", root)
    assert status.status == registry.MISSING and status.path == path
    assert "3dshapes.h5" in status.message
    fixtures.write_shapes3d_fixture(root, block_sizes=(1, 1, 1, 2, 4, 15))
    status = registry.check_dataset("shapes3d", root)
    assert status.status == registry.MALFORMED
    assert "uint8[1, 1, 1, 2, 4, 15, 64, 64, 3]" in status.message
    # With the block's sizes as the expectation, the same layout checks pass.
    monkeypatch.setattr(registry, "SHAPES3D_FACTOR_SIZES", (1, 1, 1, 2, 4, 15))
    assert registry.check_dataset("shapes3d", root).ok


def test_check_reads_npz_content_against_its_crcs(tmp_path, monkeypatch, capsys) -> None:
    # A flipped pixel byte leaves every header intact: the cheap check before
    # each run (require_dataset) passes, `splitenc_data check` reads the bytes.
    monkeypatch.setattr(registry, "SHAPES3D_FACTOR_SIZES", (1, 1, 1, 2, 4, 15))
    monkeypatch.setenv("SPLITENC_DATA_CACHE", str(tmp_path / "cache"))
    root = str(tmp_path / "data")
    path = fixtures.write_shapes3d_fixture(root, block_sizes=(1, 1, 1, 2, 4, 15))
    assert cli.main(["check", "--data_root", root, "shapes3d"]) == 0
    fixtures.damage_npz_member(path, "images.npy")
    assert registry.check_dataset("shapes3d", root).ok
    capsys.readouterr()
    assert cli.main(["check", "--data_root", root, "shapes3d"]) == 1
    out = capsys.readouterr().out
    assert (f"dataset 'shapes3d' is malformed: {path} is damaged (Bad CRC-32 for file "
            f"'images.npy') (data root {root}). To get it, ") in out, out


def test_shapes3d_fixture_rejects_non_prefix_blocks(tmp_path) -> None:
    with pytest.raises(ValueError, match="prefix"):
        fixtures.write_shapes3d_fixture(str(tmp_path), block_sizes=(1, 1, 1, 2, 2, 15))
    with pytest.raises(ValueError, match="prefix"):
        fixtures.write_shapes3d_fixture(str(tmp_path), block_sizes=(2, 1, 10, 8, 4, 15))


@pytest.mark.parametrize("mode", ["mpi3d_toy", "mpi3d_realistic", "mpi3d_real"])
def test_mpi3d_missing_and_malformed(tmp_path, mode) -> None:
    root = str(tmp_path)
    path = os.path.join(root, mode, f"{mode}.npz")
    status = registry.check_dataset(mode, root)
    assert status.status == registry.MISSING and status.path == path
    os.makedirs(os.path.dirname(path))
    np.savez(path, images=np.zeros((10, 64, 64, 3), np.uint8))
    status = registry.check_dataset(mode, root)
    assert status.status == registry.MALFORMED
    expected = {"mpi3d_toy": 460800, "mpi3d_realistic": 460800, "mpi3d_real": 1036800}[mode]
    assert f"uint8[{expected}, 64, 64, 3]" in status.message


# --------------------------------------------------------------------------
# splitenc_data check.

def test_check_lists_every_dataset(tmp_path, norb_root, capsys) -> None:
    _copy_tree(norb_root, str(tmp_path))
    assert cli.main(["check", "--data_root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()
            if line and not line.startswith((" ", "data root"))}
    assert rows == {name: ("present" if name in ("smallnorb", "dummy_data") else "missing")
                    for name in DLIB_NAMES}
    assert "splitenc_data dsprites --output_dir" in out
    assert "dlib_download_data" in out


def test_check_named_datasets_sets_the_exit_code(tmp_path, norb_root, capsys) -> None:
    assert cli.main(["check", "--data_root", norb_root, "smallnorb", "dummy_data"]) == 0
    assert cli.main(["check", "--data_root", str(tmp_path), "smallnorb"]) == 1
    assert cli.main(["check", "--data_root", str(tmp_path), "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_check_refuses_a_data_root_that_is_a_file(tmp_path, capsys) -> None:
    root = tmp_path / "afile"
    root.write_text("")
    assert cli.main(["check", "--data_root", str(root)]) == 2
    captured = capsys.readouterr()
    assert f"data root (--data_root) {root} is a file" in captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


@pytest.mark.parametrize("where", ["--output_dir", "env"])
def test_dsprites_refuses_a_data_root_that_is_a_file(tmp_path, monkeypatch, capsys,
                                                     where) -> None:
    root = tmp_path / "afile"
    root.write_text("kept")
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    if where == "env":
        monkeypatch.setenv(registry.ENV_VAR, str(root))
    args = ["--output_dir", str(root)] if where == "--output_dir" else []
    assert cli.main(["dsprites", *args]) == 2
    err = capsys.readouterr().err
    source = "--output_dir" if where == "--output_dir" else f"${registry.ENV_VAR}"
    assert f"{source} {root} is a file" in err and err.count("\n") == 1
    assert root.read_text() == "kept"


def test_the_installed_splitenc_data_command_runs(tmp_path) -> None:
    # The console script setup.py installs, not only cli.main in-process.
    proc = run_script("splitenc_data", "check", "--data_root", str(tmp_path), "dummy_data")
    assert_ok(proc)
    assert "dummy_data" in proc.stdout and "present" in proc.stdout
