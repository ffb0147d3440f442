"""Tests of the procedural dSprites generator: file format, geometry, determinism.

Everything here runs on subsets of the factor grid (pure numpy, a few
seconds). The full 737,280-image generation is tested only with
SPLITENC_FULL_DATA=1 (about 15 s and 20 MB of disk).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from _splitenc_plugin_hook import env_flag
from splitenc_plugin.data import cli, dsprites

FULL_SIZES = [1, 3, 6, 40, 32, 32]
SUBSET = {"shape": [0, 2], "scale": [0, 5], "orientation": [0, 7, 39],
          "posX": [0, 13, 31], "posY": [0, 31]}


def _centroid_and_moments(image: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Returns (x, y) of the foreground centroid in pixel coordinates and (mxx, myy, mxy)."""
    ys, xs = np.nonzero(image)
    xs = xs + 0.5  # pixel i covers [i, i + 1)
    ys = ys + 0.5
    cx, cy = xs.mean(), ys.mean()
    moments = np.array([((xs - cx) ** 2).mean(), ((ys - cy) ** 2).mean(),
                        ((xs - cx) * (ys - cy)).mean()])
    return cx, cy, moments


def _load(path: str) -> dict:
    with np.load(path, allow_pickle=True, encoding="latin1") as data:
        return {key: data[key] for key in data.files}


# --------------------------------------------------------------------------
# Format.

def test_latent_grid_matches_specification() -> None:
    values = dsprites.latent_possible_values()
    assert list(values) == ["color", "shape", "scale", "orientation", "posX", "posY"]
    assert [len(v) for v in values.values()] == FULL_SIZES
    np.testing.assert_array_equal(values["shape"], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(values["scale"], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    np.testing.assert_array_equal(values["orientation"], np.linspace(0, 2 * np.pi, 40))
    np.testing.assert_array_equal(values["posX"], np.linspace(0, 1, 32))
    assert all(v.dtype == np.float64 for v in values.values())


def test_full_latents_are_row_major_with_posy_fastest() -> None:
    classes, values = dsprites.latents()
    assert classes.shape == (737280, 6) and classes.dtype == np.int64
    assert values.shape == (737280, 6) and values.dtype == np.float64
    np.testing.assert_array_equal(classes[0], [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(classes[1], [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(classes[32], [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(classes[1024], [0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(classes[40960], [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(classes[245760], [0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(classes[-1], [0, 2, 5, 39, 31, 31])
    np.testing.assert_array_equal(values[-1], [1.0, 3.0, 1.0, 2 * np.pi, 1.0, 1.0])
    # dlib indexes images by dot(classes, prod(sizes) / cumprod(sizes)).
    bases = np.prod(FULL_SIZES) // np.cumprod(FULL_SIZES)
    np.testing.assert_array_equal(classes @ bases, np.arange(737280))


def test_subset_file_has_the_original_keys_dtypes_and_metadata(tmp_path) -> None:
    path = dsprites.generate_dsprites(str(tmp_path), subset=SUBSET)
    assert path == os.path.join(str(tmp_path), "dsprites",
                                "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")
    data = _load(path)
    assert set(data) == {"imgs", "latents_values", "latents_classes", "metadata"}
    n = 1 * 2 * 2 * 3 * 3 * 2
    assert data["imgs"].shape == (n, 64, 64) and data["imgs"].dtype == np.uint8
    assert set(np.unique(data["imgs"])) == {0, 1}
    assert data["latents_values"].shape == (n, 6)
    assert data["latents_values"].dtype == np.float64
    assert data["latents_classes"].shape == (n, 6)
    assert data["latents_classes"].dtype == np.int64
    meta = data["metadata"][()]
    assert isinstance(meta, dict)
    assert list(meta["latents_sizes"]) == [1, 2, 2, 3, 3, 2]
    assert tuple(meta["latents_names"]) == ("color", "shape", "scale", "orientation",
                                            "posX", "posY")
    full = dsprites.latent_possible_values()
    for name, chosen in SUBSET.items():
        np.testing.assert_array_equal(meta["latents_possible_values"][name],
                                      full[name][chosen])
    # Row order: row-major over the chosen classes, posY fastest.
    classes = data["latents_classes"]
    np.testing.assert_array_equal(classes[:4, 4:], [[0, 0], [0, 31], [13, 0], [13, 31]])
    np.testing.assert_array_equal(classes[-1], [0, 2, 5, 39, 31, 31])
    for k, name in enumerate(dsprites.LATENT_NAMES):
        np.testing.assert_array_equal(data["latents_values"][:, k],
                                      full[name][classes[:, k]])
    # The images of a subset are those of the full grid at the same classes.
    np.testing.assert_array_equal(data["imgs"], dsprites.render(*classes[:, 1:].T))


def test_full_metadata_like_the_original() -> None:
    meta = dsprites.build_metadata()
    for key in ("date", "description", "version", "latents_names", "latents_possible_values",
                "latents_sizes", "author", "title"):
        assert key in meta
    np.testing.assert_array_equal(meta["latents_sizes"], FULL_SIZES)
    assert meta["latents_sizes"].dtype == np.int64
    assert meta["shape_names"] == ("square", "ellipse", "heart")
    assert "re-rendering" in meta["description"]
    assert meta["version"] == meta["rendering"]["renderer_version"] == dsprites.RENDERER_VERSION


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch) -> None:
    def exploding_blocks(chosen):
        yield np.zeros((len(chosen["posX"]), len(chosen["posY"]), 64, 64), np.uint8)
        raise KeyboardInterrupt

    monkeypatch.setattr(dsprites, "_image_blocks", exploding_blocks)
    with pytest.raises(KeyboardInterrupt):
        dsprites.generate_dsprites(str(tmp_path), subset=SUBSET)
    assert os.listdir(tmp_path / "dsprites") == []


def test_render_rejects_out_of_range_indices() -> None:
    with pytest.raises(ValueError, match="orientation"):
        dsprites.render(0, 0, 40, 0, 0)
    with pytest.raises(ValueError, match="posX"):
        dsprites.render(0, 0, 0, -1, 0)


# --------------------------------------------------------------------------
# Geometry.

def test_position_mapping_puts_anchors_in_the_middle_half_of_the_canvas() -> None:
    centres = dsprites.position_to_pixel(np.arange(32))
    assert centres[0] == 16.0 and centres[-1] == 48.0
    np.testing.assert_allclose(np.diff(centres), 32 / 31)
    assert centres[0] + centres[-1] == 64.0


def _heart_area_and_centroid() -> tuple[float, np.ndarray]:
    """Shoelace area and area centroid of the heart polygon (scale 1)."""
    p = dsprites.heart_polygon()
    q = np.roll(p, -1, axis=0)
    cross = p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]
    area = cross.sum() / 2
    centroid = ((p + q) * cross[:, None]).sum(axis=0) / (6 * area)
    return abs(area), centroid


@pytest.mark.parametrize("shape", [0, 1, 2])
@pytest.mark.parametrize("scale", [0, 5])
def test_centroid_moves_with_posx_and_posy(shape, scale) -> None:
    s = dsprites.latent_possible_values()["scale"][scale]
    # Square and ellipse are centred on the anchor; the heart's area centroid
    # sits below its curve origin, at a fixed offset from the anchor.
    offset = (_heart_area_and_centroid()[1] * s) if shape == 2 else np.zeros(2)
    anchors = dsprites.position_to_pixel(np.arange(32))
    along_x = dsprites.render(shape, scale, 0, np.arange(32), 10)
    along_y = dsprites.render(shape, scale, 0, 20, np.arange(32))
    cx = np.array([_centroid_and_moments(im)[0] for im in along_x])
    cy_fixed = np.array([_centroid_and_moments(im)[1] for im in along_x])
    cy = np.array([_centroid_and_moments(im)[1] for im in along_y])
    cx_fixed = np.array([_centroid_and_moments(im)[0] for im in along_y])
    assert np.all(np.diff(cx) > 0.5) and np.all(np.diff(cy) > 0.5)
    # Point sampling moves a small sprite's centroid by up to ~0.4 px.
    np.testing.assert_allclose(cx, anchors + offset[0], atol=0.45)
    np.testing.assert_allclose(cy, anchors + offset[1], atol=0.45)
    # Moving along one axis does not move the other coordinate.
    assert np.ptp(cy_fixed) < 0.35 and np.ptp(cx_fixed) < 0.35


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_area_grows_monotonically_with_scale(shape) -> None:
    for orientation in (0, 5, 13):
        areas = dsprites.render(shape, np.arange(6), orientation, 16, 16).sum(axis=(1, 2))
        assert np.all(np.diff(areas) > 0), areas


def test_pixel_areas_are_the_shapes_closed_form_areas() -> None:
    # Point sampling is unbiased: averaged over orientations and positions,
    # the pixel count is the continuous area.
    scales = dsprites.latent_possible_values()["scale"]
    a, b = dsprites.ELLIPSE_SEMI_AXES_PX
    unit = [dsprites.SIZE_PX ** 2, np.pi * a * b, _heart_area_and_centroid()[0]]
    px, py = np.meshgrid(np.arange(8, 12), np.arange(8, 12))
    for scale_idx in (0, 5):
        for shape in range(3):
            images = dsprites.render(shape, scale_idx, np.arange(0, 40, 3)[:, None],
                                     px.ravel()[None, :], py.ravel()[None, :])
            mean_area = images.sum(axis=(1, 2)).mean()
            np.testing.assert_allclose(mean_area, unit[shape] * scales[scale_idx] ** 2,
                                       rtol=0.02)


def _mean_moments(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid offsets from each image's anchor and central second moments.

    Args:
      images: render_grid output, shape (32, 32, 64, 64).

    Returns:
      (mean (dx, dy) over all images, mean (mxx, myy, mxy) over all images).
    """
    anchors = dsprites.position_to_pixel(np.arange(32))
    coords = np.arange(64) + 0.5
    w = images.astype(np.float64)
    mass = w.sum(axis=(2, 3))
    cx = (w.sum(axis=2) * coords).sum(axis=2) / mass
    cy = (w.sum(axis=3) * coords).sum(axis=2) / mass
    dx = coords[None, None, None, :] - cx[..., None, None]
    dy = coords[None, None, :, None] - cy[..., None, None]
    moments = [(w * m).sum(axis=(2, 3)) / mass for m in (dx * dx, dy * dy, dx * dy)]
    shift = np.stack([cx - anchors[:, None], cy - anchors[None, :]], axis=-1)
    return shift.reshape(-1, 2).mean(axis=0), np.array([m.mean() for m in moments])


@pytest.mark.parametrize("scale", [0, 5])
def test_orientation_turns_the_ellipse_counter_clockwise_on_screen(scale) -> None:
    # Moments averaged over all 1,024 positions cancel the sampling noise;
    # the principal axis must follow the orientation modulo 180 degrees.
    thetas = np.degrees(dsprites.latent_possible_values()["orientation"])
    for orient_idx, theta in enumerate(thetas):
        _, (mxx, myy, mxy) = _mean_moments(dsprites.render_grid(1, scale, orient_idx))
        # x right, y down: a counter-clockwise turn on screen decreases this angle.
        angle = -0.5 * np.degrees(np.arctan2(2 * mxy, mxx - myy))
        error = (angle - theta + 90.0) % 180.0 - 90.0
        assert abs(error) < 0.5, (orient_idx, theta, angle)


@pytest.mark.parametrize("scale", [0, 5])
def test_the_heart_turns_counter_clockwise_about_its_anchor(scale) -> None:
    # The anchor is not the heart's centroid: the centroid circles the anchor
    # at the polygon centroid's distance, turning with the orientation.
    s = dsprites.latent_possible_values()["scale"][scale]
    offset = _heart_area_and_centroid()[1] * s
    thetas = dsprites.latent_possible_values()["orientation"]
    for orient_idx in range(0, 40, 3):
        c, t = np.cos(thetas[orient_idx]), np.sin(thetas[orient_idx])
        # Counter-clockwise on screen, y down: (x, y) -> (x c + y t, -x t + y c).
        expected = np.array([offset[0] * c + offset[1] * t, -offset[0] * t + offset[1] * c])
        shift, _ = _mean_moments(dsprites.render_grid(2, scale, orient_idx))
        np.testing.assert_allclose(shift, expected, atol=0.05 + 0.05 * s)


def test_heart_is_a_heart() -> None:
    image = dsprites.render(2, 5, 0, 16, 16)[0]
    rows = np.nonzero(image.any(axis=1))[0]
    cols = np.nonzero(image.any(axis=0))[0]
    centre = int(dsprites.position_to_pixel(16))  # the pixel holding the anchor
    # Centred horizontally on its axis of symmetry.
    width = cols[-1] - cols[0] + 1
    assert abs((cols[0] + cols[-1]) / 2 - centre) <= 1
    top_of_column = [np.nonzero(image[:, c])[0][0] for c in range(cols[0], cols[-1] + 1)]
    # Two lobes on top with a notch between them.
    lobe_top = min(top_of_column)
    notch = top_of_column[centre - cols[0]]
    assert notch - lobe_top >= 1
    # One point at the bottom: the bottom row is narrow and centred.
    bottom = np.nonzero(image[rows[-1]])[0]
    assert len(bottom) <= 3 and abs(bottom.mean() - centre) <= 1
    # Wider in the upper half than in the lower half.
    mid = (rows[0] + rows[-1]) // 2
    assert image[rows[0]:mid].sum(axis=1).max() > image[mid + 3:rows[-1] + 1].sum(axis=1).max()
    assert 19 <= width <= 20


def test_heart_polygon_spans_the_documented_box() -> None:
    p = dsprites.heart_polygon()
    assert len(p) == dsprites.HEART_VERTICES
    np.testing.assert_allclose(np.ptp(p[:, 0]), dsprites.SIZE_PX, rtol=1e-3)
    # y spans 17 + 11.92 curve units of SIZE_PX / 29 px each; the tip is at
    # t = pi: y = -17 units, i.e. 17 * ky - origin offset px below the anchor.
    ky = dsprites.SIZE_PX / dsprites.HEART_HEIGHT_UNITS
    assert p[:, 1].max() == pytest.approx(17 * ky - dsprites.HEART_ORIGIN_ABOVE_ANCHOR_PX)
    np.testing.assert_allclose(np.ptp(p[:, 1]), 28.923 * ky, rtol=1e-3)


def test_nothing_touches_the_border_and_nothing_is_clipped() -> None:
    corners = np.array([0, 31])
    shape, orient, px, py = (a.ravel() for a in np.meshgrid(
        np.arange(3), np.arange(40), corners, corners, indexing="ij"))
    images = dsprites.render(shape, 5, orient, px, py)
    assert images.sum(axis=(1, 2)).min() > 150
    # The square's corner reaches 9.6 * sqrt(2) = 13.6 px from an anchor at
    # 16 or 48 px: rows and columns 0, 1, 62 and 63 stay empty.
    for border in (images[:, :2, :], images[:, -2:, :], images[:, :, :2], images[:, :, -2:]):
        assert not border.any()
    # No shape reaches beyond the square's corner, so the evaluated lattice
    # (14 px around the anchor) clips nothing.
    reach = 0.5 * dsprites.SIZE_PX * np.sqrt(2)
    assert np.linalg.norm(dsprites.heart_polygon(), axis=1).max() < reach
    assert max(dsprites.ELLIPSE_SEMI_AXES_PX) < reach
    ys, xs = np.nonzero(images.any(axis=0))
    assert ys.min() >= 16 - reach - 0.5 and xs.max() <= 48 + reach - 0.5


# --------------------------------------------------------------------------
# Determinism.

def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_two_generations_are_byte_identical(tmp_path) -> None:
    first = dsprites.generate_dsprites(str(tmp_path / "a"), subset=SUBSET)
    second = dsprites.generate_dsprites(str(tmp_path / "b"), subset=SUBSET)
    assert _sha256(first) == _sha256(second)
    with zipfile.ZipFile(first) as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_rendered_pixels_are_pinned() -> None:
    # Not a correctness check (the closed-form and real-frame tests are): a
    # tripwire for the pixels themselves. Any change here changes every job's
    # data fingerprint, so bump dsprites.RENDERER_VERSION with it: finished
    # jobs on the old pixels then stop counting as finished for the new ones.
    images = dsprites.render(np.arange(3), np.array([0, 3, 5]), np.array([0, 11, 27]),
                             np.array([0, 17, 31]), np.array([31, 4, 0]))
    # Keyed by version: new pixels fail here until the version is bumped too.
    areas, digest = PINNED[dsprites.RENDERER_VERSION]
    assert images.sum(axis=(1, 2)).tolist() == areas
    assert hashlib.sha256(images.tobytes()).hexdigest() == digest


# Renderer version -> (the three images' areas, the SHA-256 of their pixels).
PINNED = {2: ([100, 184, 225], "1faa3cf79400494d171e21248e3426c6b58e2f12707a525206e0fc68785202a5")}


# --------------------------------------------------------------------------
# The command line.

def test_cli_requires_an_output_directory(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)
    assert cli.main(["dsprites"]) == 2
    err = capsys.readouterr().err
    assert "--output_dir" in err and "DISENTANGLEMENT_LIB_DATA" in err


def test_cli_generates_into_the_env_data_root(monkeypatch, tmp_path, capsys) -> None:
    calls = []
    real_generate = dsprites.generate_dsprites

    def fake_generate(output_dir):
        calls.append(output_dir)
        return real_generate(output_dir, subset=SUBSET)

    monkeypatch.setenv("DISENTANGLEMENT_LIB_DATA", str(tmp_path))
    monkeypatch.setattr(dsprites, "generate_dsprites", fake_generate)
    assert cli.main(["dsprites"]) == 0
    assert calls == [str(tmp_path)]
    assert "wrote " + str(tmp_path) in capsys.readouterr().out
    # A reduced file is not the real thing, so a second run regenerates it.
    assert cli.main(["dsprites", "--output_dir", str(tmp_path / "other")]) == 0
    assert calls == [str(tmp_path), str(tmp_path / "other")]


@pytest.mark.parametrize("spelling", ["{}", "{}//", "{}/./", "{}/../{name}"])
def test_cli_refuses_a_file_where_the_dsprites_directory_goes(tmp_path, capsys,
                                                              spelling) -> None:
    # However the output directory is spelled (a 'a//b' root once hung the walk).
    blocker = tmp_path / "dsprites"
    blocker.write_text("kept")
    root = spelling.format(tmp_path, name=tmp_path.name)
    assert cli.main(["dsprites", "--output_dir", root]) == 2
    err = capsys.readouterr().err
    assert err.startswith("splitenc_data: error: cannot write ") and err.count("\n") == 1, err
    assert "dsprites is a file" in err and "--output_dir" in err
    assert blocker.read_text() == "kept"


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_cli_refuses_a_directory_where_the_dsprites_file_goes(tmp_path, capsys, force) -> None:
    blocker = tmp_path / "dsprites" / dsprites.FILENAME
    (blocker / "inside").mkdir(parents=True)
    assert cli.main(["dsprites", "--output_dir", str(tmp_path), *force]) == 2
    err = capsys.readouterr().err
    assert err == (f"splitenc_data: error: cannot write {blocker}: it is a directory, where the "
                   "file should be; move it away, or pass another --output_dir\n")
    assert (blocker / "inside").is_dir()


def test_cli_a_failed_write_is_one_line_naming_the_file(tmp_path) -> None:
    # A real write error: the file-size limit makes write() fail with EFBIG
    # (as a full disk fails with ENOSPC) once the file passes 64 KB.
    code = textwrap.dedent("""
        import resource, signal, sys
        from splitenc_plugin.data import cli
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE,
                           (65536, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        sys.exit(cli.main(["dsprites", "--output_dir", sys.argv[1]]))
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=300, check=False)
    path = tmp_path / "dsprites" / dsprites.FILENAME
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr == (f"splitenc_data: error: cannot write {path}: File too large; nothing "
                           "was written. The output needs ~20.0 MB free in a writable "
                           "directory: free space or fix the permissions, or pass another "
                           "--output_dir\n")
    assert os.listdir(tmp_path / "dsprites") == []  # no temporary file left


@pytest.mark.skipif(not env_flag("SPLITENC_FULL_DATA", default=False),
                    reason="full 737,280-image generation: set SPLITENC_FULL_DATA=1")
def test_full_generation_matches_the_specification(tmp_path, capsys) -> None:
    assert cli.main(["dsprites", "--output_dir", str(tmp_path)]) == 0
    path = os.path.join(str(tmp_path), "dsprites", dsprites.FILENAME)
    data = _load(path)
    assert data["imgs"].shape == (737280, 64, 64) and data["imgs"].dtype == np.uint8
    assert data["latents_values"].shape == (737280, 6)
    assert data["latents_classes"].shape == (737280, 6)
    np.testing.assert_array_equal(data["metadata"][()]["latents_sizes"], FULL_SIZES)
    rows = np.array([0, 1, 12345, 400000, 737279])
    np.testing.assert_array_equal(data["imgs"][rows],
                                  dsprites.render(*data["latents_classes"][rows, 1:].T))
    assert not data["imgs"][:, [0, -1], :].any() and not data["imgs"][:, :, [0, -1]].any()
    # Already present and valid: the command does not regenerate it.
    capsys.readouterr()
    assert cli.main(["dsprites", "--output_dir", str(tmp_path)]) == 0
    assert "already present" in capsys.readouterr().out


def _dsprites_file(root, version: int | None) -> str:
    """A small dSprites file whose metadata says renderer ``version`` (None: DeepMind's)."""
    os.makedirs(root / dsprites.SUBDIR, exist_ok=True)
    path = dsprites.write_dsprites_npz(str(root / dsprites.SUBDIR / dsprites.FILENAME), SUBSET)
    members = _load(path)
    metadata = dict(members["metadata"][()])
    if version is None:
        del metadata["rendering"]
    else:
        metadata["rendering"] = {**metadata["rendering"], "renderer_version": version}
    members["metadata"] = np.array(metadata, dtype=object)
    np.savez_compressed(path.removesuffix(".npz"), **members)
    return path


@pytest.fixture
def valid_file_there(monkeypatch, tmp_path) -> list[str]:
    """A SUBSET file counts as a valid full one (737,280 images); generation writes SUBSET.

    Only the size check is stubbed: any other problem is still found.
    """
    from splitenc_plugin.data import registry

    real_check, real_generate = registry.check_dataset, dsprites.generate_dsprites

    def check(name, root, verify=False):
        status = real_check(name, root, verify)
        if status.status == registry.MALFORMED and "latents_sizes" in status.detail:
            return registry.DatasetStatus(name, registry.PRESENT, status.path, "present", root)
        return status

    monkeypatch.setattr(registry, "check_dataset", check)
    calls: list[str] = []
    monkeypatch.setattr(dsprites, "generate_dsprites", lambda root: calls.append(root)
                        or real_generate(root, subset=SUBSET))
    return calls


@pytest.mark.parametrize(("version", "force", "says"), [
    (dsprites.RENDERER_VERSION, [], "is already present and valid"),
    (None, [], "is not ours (DeepMind's file?); kept"),
    (dsprites.RENDERER_VERSION + 1, [], "newer than this one"),
    # --force replaces any file, someone's own copy included (the only way to).
    (None, ["--force"], "wrote"),
])
def test_cli_keeps_a_valid_file_unless_forced(valid_file_there, tmp_path, capsys, version,
                                              force, says) -> None:
    path = _dsprites_file(tmp_path, version)
    before = _sha256(path)
    assert cli.main(["dsprites", "--output_dir", str(tmp_path), *force]) == 0
    assert says in capsys.readouterr().out
    assert valid_file_there == ([str(tmp_path)] if force else [])
    assert (_sha256(path) == before) == (not force)
    assert os.listdir(tmp_path / "dsprites") == [dsprites.FILENAME]


def test_cli_keeps_an_older_renderers_file_aside(valid_file_there, tmp_path, capsys) -> None:
    # The first campaign's results were made on renderer v1: its file is kept
    # beside the new one, never over a file already called .renderer-v1.
    path = _dsprites_file(tmp_path, 1)
    v1 = _sha256(path)
    theirs = tmp_path / "dsprites" / (dsprites.FILENAME + ".renderer-v1")
    theirs.write_text("someone's")
    assert cli.main(["dsprites", "--output_dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    aside = path + ".renderer-v1.2"
    assert f"{path} was made by renderer v1; kept it as {aside}; writing renderer v2" in out
    assert _sha256(aside) == v1 and theirs.read_text() == "someone's"
    assert valid_file_there == [str(tmp_path)] and "wrote" in out
    from splitenc_plugin.data import fingerprint

    assert fingerprint.dsprites_renderer_version(path) == dsprites.RENDERER_VERSION
    assert fingerprint.dsprites_renderer_version(aside) == 1


def test_cli_keeps_a_symlinked_older_file_as_a_link_to_it(valid_file_there, tmp_path,
                                                          capsys) -> None:
    # A data file that is a symlink (e.g. to shared storage) is kept aside as
    # the link itself: the target is never touched, nor linked across filesystems.
    target = Path(_dsprites_file(tmp_path / "store", 1))
    v1 = _sha256(str(target))
    path = tmp_path / "data" / "dsprites" / dsprites.FILENAME
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    assert cli.main(["dsprites", "--output_dir", str(tmp_path / "data")]) == 0
    aside = Path(f"{path}.renderer-v1")
    assert aside.is_symlink() and aside.resolve() == target.resolve()
    assert _sha256(str(target)) == v1 and not path.is_symlink()
    assert f"kept it as {aside}" in capsys.readouterr().out


def test_cli_a_failed_write_keeps_the_older_file_where_it_was(valid_file_there, tmp_path,
                                                              capsys, monkeypatch) -> None:
    path = _dsprites_file(tmp_path, 1)
    v1 = _sha256(path)

    def full_disk(root):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dsprites, "generate_dsprites", full_disk)
    assert cli.main(["dsprites", "--output_dir", str(tmp_path)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert os.listdir(tmp_path / "dsprites") == [dsprites.FILENAME] and _sha256(path) == v1


def test_cli_refuses_to_replace_a_malformed_file_unasked(tmp_path, capsys,
                                                         monkeypatch) -> None:
    # The real check: a reduced file is malformed (it could as well be a
    # half-copied DeepMind file); the command says so and keeps it.
    path = dsprites.generate_dsprites(str(tmp_path), subset=SUBSET)
    before = _sha256(path)
    calls: list[str] = []
    monkeypatch.setattr(dsprites, "generate_dsprites", calls.append)
    assert cli.main(["dsprites", "--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"splitenc_data: error: {path} has latents_sizes [1, 2, 2, 3, 3, 2], dlib "
                   f"expects [1, 3, 6, 40, 32, 32] (a reduced test file?); it was kept (it "
                   f"may be a partial copy of DeepMind's file): move it away, or pass --force "
                   f"to replace it with our rendering\n")
    assert calls == [] and _sha256(path) == before
    monkeypatch.setattr(dsprites, "generate_dsprites", lambda root: calls.append(root) or path)
    assert cli.main(["dsprites", "--output_dir", str(tmp_path), "--force"]) == 0
    assert "replacing it (--force)" in capsys.readouterr().out and calls == [str(tmp_path)]
