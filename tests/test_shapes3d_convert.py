"""``splitenc_data shapes3d --from 3dshapes.h5``: DeepMind's h5 -> the npz dlib reads.

The fixture is an h5 file in DeepMind's layout (``images`` (n, 64, 64, 3)
uint8, ``labels`` (n, 6) float64, rows in row-major factor order) holding a
prefix block of the real order (``--block``; the real file has 480,000 rows),
every pixel of a row encoding its factor classes (``shapes3d_pixel_values``).
The converted npz is then read back through dlib's own Shapes3D loader.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import zipfile

import data_fixtures as fixtures
import numpy as np
import pytest

from splitenc_plugin.data import cli, registry
from splitenc_plugin.data import shapes3d as conv

BLOCK = (1, 1, 1, 2, 4, 15)
BLOCK_ARG = ",".join(map(str, BLOCK))


@pytest.fixture(scope="module")
def h5_fixture(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("h5") / "3dshapes.h5")
    # Small chunks, so that the streamed copy crosses several chunk borders.
    return conv.write_layout_h5(path, BLOCK, fixtures.shapes3d_pixel_values, chunk_images=7)


def _outputs(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_fixture_has_deepminds_layout(h5_fixture) -> None:
    import h5py

    with h5py.File(h5_fixture, "r") as f:
        assert sorted(f.keys()) == ["images", "labels"]
        assert f["images"].shape == (120, 64, 64, 3) and f["images"].dtype == np.uint8
        assert f["labels"].shape == (120, 6) and f["labels"].dtype == np.float64
        # Row 37 of the real order: scale 0, shape 2, orientation 7.
        np.testing.assert_allclose(f["labels"][37], [0, 0, 0, 0.75, 2, -30 + 7 * 60 / 14])


def test_converts_to_the_npz_dlib_reads(h5_fixture, tmp_path, capsys) -> None:
    assert cli.main(["shapes3d", "--from", h5_fixture, "--output_dir", str(tmp_path),
                     "--block", BLOCK_ARG]) == 0
    assert "wrote" in capsys.readouterr().out
    path = tmp_path / registry.SHAPES3D_FILE
    assert _outputs(tmp_path) == [registry.SHAPES3D_FILE]
    with np.load(path) as data:
        images, labels = data["images"], data["labels"]
    assert images.shape == BLOCK + (64, 64, 3) and images.dtype == np.uint8
    assert labels.shape == BLOCK + (6,)
    classes = np.stack(np.meshgrid(*(np.arange(s) for s in BLOCK), indexing="ij"), axis=-1)
    np.testing.assert_array_equal(images[..., 9, 50, :],
                                  fixtures.shapes3d_pixel_values(classes))
    assert np.all(images == images[..., :1, :1, :])  # every pixel of an image alike
    np.testing.assert_allclose(labels[..., 3], np.linspace(0.75, 1.25, 8)[classes[..., 3]])
    # Stored uncompressed, as np.savez writes it (the lean loader maps it).
    with zipfile.ZipFile(path) as zf:
        assert {i.compress_type for i in zf.infolist()} == {0}


@pytest.mark.skipif(importlib.util.find_spec("disentanglement_lib") is None,
                    reason="disentanglement_lib is not installed")
@pytest.mark.parametrize("lean", ["0", "1"])
def test_dlib_reads_the_converted_file(h5_fixture, tmp_path, lean) -> None:
    conv.convert_h5(h5_fixture, str(tmp_path), block_sizes=BLOCK)
    code = textwrap.dedent("""
        import numpy as np
        from disentanglement_lib.data.ground_truth import shapes3d
        data = shapes3d.Shapes3D()
        rs = np.random.RandomState(0)
        factors = np.stack([rs.randint(s, size=50) for s in (1, 1, 1, 2, 4, 15)], axis=1)
        obs = data.sample_observations_from_factors(factors, rs)
        np.savez("out.npz", factors=factors, obs=obs)
    """)
    env = dict(os.environ, DISENTANGLEMENT_LIB_DATA=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2",
               SPLITENC_LEAN_DATA=lean)
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-5000:]
    with np.load(tmp_path / "out.npz") as out:
        factors, obs = out["factors"], out["obs"]
    assert obs.dtype == np.float32 and obs.shape == (50, 64, 64, 3)
    np.testing.assert_array_equal(
        obs[:, 31, 2, :],
        fixtures.shapes3d_pixel_values(factors).astype(np.float32) / np.float32(255))


def test_truncated_h5_gives_one_clear_error_and_no_output(h5_fixture, tmp_path,
                                                          capsys) -> None:
    damaged = str(tmp_path / "3dshapes.h5")
    with open(h5_fixture, "rb") as src, open(damaged, "wb") as dst:
        dst.write(src.read(os.path.getsize(h5_fixture) * 2 // 3))
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["shapes3d", "--from", damaged, "--output_dir", str(out),
                     "--block", BLOCK_ARG]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and damaged in err and "truncated" in err, err
    assert "no output was written" in err
    assert _outputs(out) == []  # not even a temporary file


def test_full_layout_is_required_without_block(h5_fixture, tmp_path, capsys) -> None:
    assert cli.main(["shapes3d", "--from", h5_fixture, "--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "uint8[120, 64, 64, 3]" in err and "480,000" in err and "partial download" in err
    assert _outputs(tmp_path) == []


def test_rows_out_of_layout_order_are_refused(tmp_path) -> None:
    import h5py

    path = str(tmp_path / "shuffled.h5")
    conv.write_layout_h5(path, BLOCK, fixtures.shapes3d_pixel_values)
    with h5py.File(path, "r+") as f:
        labels = f["labels"][()]
        f["labels"][...] = labels[::-1]
    with pytest.raises(conv.ConversionError, match=r"row 0 has scale = 0\.82.*class 0 = 0\.75"):
        conv.convert_h5(path, str(tmp_path / "out"), block_sizes=BLOCK)
    assert not (tmp_path / "out" / registry.SHAPES3D_FILE).exists()


def test_missing_dataset_and_bad_block_are_refused(tmp_path) -> None:
    import h5py

    path = str(tmp_path / "other.h5")
    with h5py.File(path, "w") as f:
        f["imgs"] = np.zeros((120, 64, 64, 3), np.uint8)
    with pytest.raises(conv.ConversionError, match="has no dataset 'images'"):
        conv.convert_h5(path, str(tmp_path), block_sizes=BLOCK)
    with pytest.raises(conv.ConversionError, match="not a prefix block"):
        conv.convert_h5(path, str(tmp_path), block_sizes=(1, 2, 1, 8, 4, 15))


def test_a_valid_dataset_is_never_replaced_by_a_block_unasked(h5_fixture, tmp_path, capsys,
                                                              monkeypatch) -> None:
    # The block's sizes stand in for the full layout, so that the first
    # conversion is a valid dataset; a --block conversion into its directory
    # must not replace it without --force.
    monkeypatch.setattr(registry, "SHAPES3D_FACTOR_SIZES", BLOCK)
    args = ["shapes3d", "--from", h5_fixture, "--output_dir", str(tmp_path), "--block", BLOCK_ARG]
    assert cli.main(args) == 0
    written = tmp_path / registry.SHAPES3D_FILE
    stamp = written.stat().st_mtime_ns
    capsys.readouterr()
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert str(written) in err and "--force" in err and err.count("\n") == 1
    assert written.stat().st_mtime_ns == stamp
    assert cli.main([*args, "--force"]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "{missing}", "--output_dir", "{root}"], "--from {missing} is not a file"),
    (["--from", "{h5}", "--output_dir", "{file}"], "--output_dir {file} is a file"),
    (["--from", "{h5}", "--output_dir", "{root}", "--block", "1,x"],
     "--block takes one integer per factor"),
])
def test_bad_arguments_are_one_error_naming_the_argument(h5_fixture, tmp_path, capsys,
                                                         args, message) -> None:
    paths = {"missing": str(tmp_path / "nope.h5"), "root": str(tmp_path / "root"),
             "file": str(tmp_path / "afile"), "h5": h5_fixture}
    (tmp_path / "afile").write_text("")
    assert cli.main(["shapes3d", *(a.format(**paths) for a in args)]) == 2
    err = capsys.readouterr().err
    assert message.format(**paths) in err and err.count("\n") == 1, err
    assert not (tmp_path / "root").exists()


def test_a_file_where_the_output_directory_goes_is_not_blamed_on_the_h5(h5_fixture, tmp_path,
                                                                       capsys) -> None:
    blocker = tmp_path / "3dshapes"
    blocker.write_text("kept")
    assert cli.main(["shapes3d", "--from", h5_fixture, "--output_dir", str(tmp_path),
                     "--block", BLOCK_ARG]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{blocker} is a file" in err, err
    assert h5_fixture not in err and "corrupt" not in err
    assert blocker.read_text() == "kept"


def test_a_failed_write_names_the_output_not_the_h5(h5_fixture, tmp_path) -> None:
    # A real write error (EFBIG past a 64 KB file-size limit, as ENOSPC on a
    # full disk): the h5 reads fine, so it must not be called corrupt.
    code = textwrap.dedent("""
        import resource, signal, sys
        from splitenc_plugin.data import cli
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE,
                           (65536, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        sys.exit(cli.main(sys.argv[1:]))
    """)
    proc = subprocess.run([sys.executable, "-c", code, "shapes3d", "--from", h5_fixture,
                           "--output_dir", str(tmp_path), "--block", BLOCK_ARG],
                          capture_output=True, text=True, timeout=300, check=False)
    path = tmp_path / registry.SHAPES3D_FILE
    assert proc.returncode == 2, proc.stderr[-3000:]
    # 120 images of 64 x 64 x 3 bytes: 1.5 MB (the full layout: 5.9 GB).
    assert proc.stderr == (f"splitenc_data: error: cannot write {path}: File too large; nothing "
                           "was written. The output needs ~1.5 MB free in a writable "
                           "directory: free space or fix the permissions, or pass another "
                           "--output_dir\n")
    assert _outputs(tmp_path) == []  # not even a temporary file


def test_the_full_conversion_needs_5_9_gb() -> None:
    assert round(conv.output_bytes() / 1e9, 1) == 5.9
