"""dlib's own loaders on our generated dSprites file and our format fixtures.

dlib computes its data paths from DISENTANGLEMENT_LIB_DATA when its modules
are imported, so every dlib call runs in a fresh subprocess with the variable
set there (the test process's environment is never changed). One subprocess
loads all fixtures and hands back what dlib returned; the tests compare it
with what the fixtures encode.

Reduced files (a dSprites subset, a Shapes3D prefix block) are loaded through
dlib's classes directly: through ``get_named_ground_truth_data`` the compat
layer's dataset check would rightly reject them as incomplete. SmallNORB and
Cars3D fixtures are complete and go through ``get_named_ground_truth_data``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import data_fixtures as fixtures
import numpy as np
import pytest
from conftest import shared_fixture_group

from _splitenc_plugin_hook import env_flag
from splitenc_plugin.data import dsprites, registry

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("disentanglement_lib") is None,
    reason="disentanglement_lib is not installed")

SUBSET = {"shape": [0, 2], "scale": [1, 5], "orientation": [0, 9, 30],
          "posX": [0, 5, 31], "posY": [2, 29]}
SHAPES3D_BLOCK = (1, 1, 1, 2, 4, 15)
NUM = 40
TIMEOUT = 300

LOAD_ALL = textwrap.dedent("""
    import json, sys
    import numpy as np
    from disentanglement_lib.data.ground_truth import (
        cars3d, dsprites, named_data, norb, shapes3d)

    out_path, block = sys.argv[1], json.loads(sys.argv[2])
    info, arrays = {}, {}
    rs = np.random.RandomState(0)

    def record(name, data, factors=None):
        if factors is None:
            factors = data.sample_factors(%(num)d, rs)
        obs = data.sample_observations_from_factors(factors, rs)
        info[name] = {
            "factors_num_values": [int(v) for v in data.factors_num_values],
            "num_factors": int(data.num_factors),
            "observation_shape": [int(v) for v in data.observation_shape],
            "factor_sizes": [int(v) for v in getattr(data, "factor_sizes", [])],
            "obs_dtype": str(obs.dtype),
        }
        arrays[name + "/factors"] = np.asarray(factors)
        arrays[name + "/obs"] = np.asarray(obs)
        return data

    # named_data maps these names to these classes; the subset file is
    # reduced, so the classes are built directly (see the module docstring).
    record("dsprites_full", dsprites.DSprites([1, 2, 3, 4, 5]))
    record("dsprites_noshape", dsprites.DSprites([2, 3, 4, 5]))
    record("color_dsprites", dsprites.ColorDSprites([1, 2, 3, 4, 5]))
    record("noisy_dsprites", dsprites.NoisyDSprites([1, 2, 3, 4, 5]))
    record("smallnorb", named_data.get_named_ground_truth_data("smallnorb"))
    cars = record("cars3d", named_data.get_named_ground_truth_data("cars3d"))
    # The car dlib calls i is the i-th .mat file in directory order; read
    # back which fixture car that is from its blue channel.
    first_views = cars.index.features_to_index(
        np.array([[0, 0, i] for i in range(183)]))
    info["cars3d"]["car_codes"] = [
        int(round(v * 255)) for v in cars.images[first_views, 0, 0, 2]]
    shapes = shapes3d.Shapes3D()
    info["shapes3d_num_images"] = int(shapes.images.shape[0])
    block_factors = np.stack(
        [rs.randint(size, size=%(num)d) for size in block], axis=1)
    record("shapes3d", shapes, block_factors)
    np.savez(out_path, **arrays)
    print("JSON" + json.dumps(info))
""") % {"num": NUM}


def _run_dlib(code: str, data_root: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DISENTANGLEMENT_LIB_DATA=data_root, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=data_root,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


SHARED_FIXTURE = shared_fixture_group(__name__)  # the tests of ``loaded``


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> tuple[dict, dict]:
    root = str(tmp_path_factory.mktemp("dlib_data"))
    dsprites.generate_dsprites(root, subset=SUBSET)
    fixtures.write_smallnorb_fixture(root, image_size=16)
    fixtures.write_cars3d_fixture(root, image_size=64)
    fixtures.write_shapes3d_fixture(root, block_sizes=SHAPES3D_BLOCK)
    out = os.path.join(root, "loaded.npz")
    proc = _run_dlib(LOAD_ALL, root, out, json.dumps(SHAPES3D_BLOCK))
    assert proc.returncode == 0, proc.stderr[-5000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("JSON"))
    with np.load(out) as data:
        arrays = {key: data[key] for key in data.files}
    return json.loads(line[4:]), arrays


def _subset_classes(factors: np.ndarray, names: list[str]) -> list[np.ndarray]:
    """Maps dlib's factor indices (into the subset) back to full-grid classes."""
    return [np.asarray(SUBSET[name])[factors[:, k]] for k, name in enumerate(names)]


# --------------------------------------------------------------------------
# dSprites (the generated file, reduced to a subset for speed).

DSPRITES_LATENTS = ["shape", "scale", "orientation", "posX", "posY"]


@SHARED_FIXTURE
def test_dsprites_full_reads_the_generated_file(loaded) -> None:
    info, arrays = loaded
    meta = info["dsprites_full"]
    # dlib hard-codes the full factor sizes in factors_num_values but samples
    # from the file's latents_sizes, which here describe the subset.
    assert meta["factors_num_values"] == [3, 6, 40, 32, 32]
    assert meta["factor_sizes"] == [1, 2, 2, 3, 3, 2]
    assert meta["observation_shape"] == [64, 64, 1] and meta["obs_dtype"] == "float32"
    factors, obs = arrays["dsprites_full/factors"], arrays["dsprites_full/obs"]
    assert factors.shape == (NUM, 5) and obs.shape == (NUM, 64, 64, 1)
    assert np.all(factors < [2, 2, 3, 3, 2]) and np.all(factors >= 0)
    expected = dsprites.render(*_subset_classes(factors, DSPRITES_LATENTS))
    np.testing.assert_array_equal(obs[..., 0], expected)


@SHARED_FIXTURE
def test_dsprites_noshape_samples_shape_as_a_nuisance(loaded) -> None:
    info, arrays = loaded
    assert info["dsprites_noshape"]["factors_num_values"] == [6, 40, 32, 32]
    assert info["dsprites_noshape"]["num_factors"] == 4
    factors, obs = arrays["dsprites_noshape/factors"], arrays["dsprites_noshape/obs"]
    assert factors.shape == (NUM, 4) and obs.shape == (NUM, 64, 64, 1)
    classes = _subset_classes(factors, DSPRITES_LATENTS[1:])
    candidates = [dsprites.render(shape, *classes) for shape in SUBSET["shape"]]
    matches = [np.all(obs[..., 0] == c, axis=(1, 2)) for c in candidates]
    assert np.all(np.logical_or(*matches))
    assert np.any(matches[0]) and np.any(matches[1])  # both shapes were drawn


@SHARED_FIXTURE
def test_color_dsprites_colours_the_generated_sprite(loaded) -> None:
    info, arrays = loaded
    assert info["color_dsprites"]["observation_shape"] == [64, 64, 3]
    assert info["color_dsprites"]["factors_num_values"] == [3, 6, 40, 32, 32]
    factors, obs = arrays["color_dsprites/factors"], arrays["color_dsprites/obs"]
    mask = dsprites.render(*_subset_classes(factors, DSPRITES_LATENTS)).astype(bool)
    assert obs.shape == (NUM, 64, 64, 3)
    assert np.all(obs[~mask] == 0)
    for image, m in zip(obs, mask):
        colours = image[m]
        assert np.all(colours == colours[0]) and np.all((colours >= 0.5) & (colours <= 1))


@SHARED_FIXTURE
def test_noisy_dsprites_keeps_the_sprite_white(loaded) -> None:
    info, arrays = loaded
    assert info["noisy_dsprites"]["observation_shape"] == [64, 64, 3]
    factors, obs = arrays["noisy_dsprites/factors"], arrays["noisy_dsprites/obs"]
    mask = dsprites.render(*_subset_classes(factors, DSPRITES_LATENTS)).astype(bool)
    assert np.all(obs[mask] == 1.0)
    background = obs[~mask]
    assert background.min() >= 0 and background.max() < 1 and background.std() > 0.2


# --------------------------------------------------------------------------
# SmallNORB, Cars3D, Shapes3D fixtures.

@SHARED_FIXTURE
def test_smallnorb_fixture_loads_with_the_right_factors(loaded) -> None:
    info, arrays = loaded
    meta = info["smallnorb"]
    assert meta["factor_sizes"] == [5, 10, 9, 18, 6]
    assert meta["factors_num_values"] == [5, 9, 18, 6]
    assert meta["observation_shape"] == [64, 64, 1]
    factors, obs = arrays["smallnorb/factors"], arrays["smallnorb/obs"]
    assert factors.shape == (NUM, 4) and obs.shape == (NUM, 64, 64, 1)
    expected = fixtures.smallnorb_quadrant_values(*factors.T)
    got = np.stack([obs[:, 16, 16, 0], obs[:, 16, 48, 0], obs[:, 48, 16, 0],
                    obs[:, 48, 48, 0]], axis=1) * 255
    np.testing.assert_allclose(got, expected, atol=1.0)


@SHARED_FIXTURE
def test_cars3d_fixture_loads_with_the_right_factors(loaded) -> None:
    info, arrays = loaded
    meta = info["cars3d"]
    assert meta["factors_num_values"] == [4, 24, 183]
    assert meta["observation_shape"] == [64, 64, 3]
    # Every fixture car landed in exactly one of dlib's 183 car slots.
    assert sorted(meta["car_codes"]) == list(range(1, 184))
    factors, obs = arrays["cars3d/factors"], arrays["cars3d/obs"]
    assert obs.shape == (NUM, 64, 64, 3)
    car_numbers = np.array(meta["car_codes"])[factors[:, 2]] - 1
    expected = fixtures.cars3d_pixel_values(factors[:, 0], factors[:, 1], car_numbers)
    # Fixture views are uniform, so every pixel carries the encoded colour.
    np.testing.assert_allclose(obs.min(axis=(1, 2)) * 255, expected, atol=0.5)
    np.testing.assert_allclose(obs.max(axis=(1, 2)) * 255, expected, atol=0.5)


@SHARED_FIXTURE
def test_shapes3d_fixture_loads_in_the_real_order(loaded) -> None:
    info, arrays = loaded
    meta = info["shapes3d"]
    assert meta["factors_num_values"] == [10, 10, 10, 8, 4, 15]
    assert meta["observation_shape"] == [64, 64, 3]
    assert info["shapes3d_num_images"] == int(np.prod(SHAPES3D_BLOCK))
    factors, obs = arrays["shapes3d/factors"], arrays["shapes3d/obs"]
    assert obs.shape == (NUM, 64, 64, 3) and meta["obs_dtype"] == "float32"
    np.testing.assert_allclose(obs[:, 5, 7, :] * 255,
                               fixtures.shapes3d_pixel_values(factors), atol=1e-3)


# --------------------------------------------------------------------------
# Missing and damaged files through dlib's entry point.

GET_NAMED = ("from disentanglement_lib.data.ground_truth import named_data\n"
             "named_data.get_named_ground_truth_data({name!r})\n")


def _assert_one_clear_error(proc: subprocess.CompletedProcess, name: str, path: str) -> None:
    assert proc.returncode != 0
    err = proc.stderr
    assert f"'{name}'" in err and path in err and "dlib_download_data" in err, err[-3000:]
    # Not a traceback from inside dlib's loaders.
    for frame in ("ground_truth/norb.py", "ground_truth/cars3d.py", "_read_binary_matrix",
                  "gfile", "NotFoundError"):
        assert frame not in err, err[-3000:]


def test_missing_smallnorb_gives_one_clear_error_through_dlib(tmp_path) -> None:
    proc = _run_dlib(GET_NAMED.format(name="smallnorb"), str(tmp_path))
    _assert_one_clear_error(proc, "smallnorb", os.path.join(
        str(tmp_path), "small_norb", "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat"))


def test_truncated_smallnorb_gives_one_clear_error_through_dlib(tmp_path) -> None:
    paths = fixtures.write_smallnorb_fixture(str(tmp_path), image_size=4)
    damaged = paths[3]  # the testing chunk's -dat file
    with open(damaged, "r+b") as f:
        f.truncate(os.path.getsize(damaged) // 3)
    assert registry.check_dataset("smallnorb", str(tmp_path)).status == registry.MALFORMED
    proc = _run_dlib(GET_NAMED.format(name="smallnorb"), str(tmp_path))
    _assert_one_clear_error(proc, "smallnorb", damaged)
    assert "truncated" in proc.stderr


def test_missing_cars3d_gives_one_clear_error_through_dlib(tmp_path) -> None:
    proc = _run_dlib(GET_NAMED.format(name="cars3d"), str(tmp_path))
    _assert_one_clear_error(proc, "cars3d", os.path.join(str(tmp_path), "cars"))


@pytest.mark.skipif(not env_flag("SPLITENC_FULL_DATA", default=False),
                    reason="full 737,280-image file through dlib: set SPLITENC_FULL_DATA=1")
def test_full_dsprites_loads_through_named_data(tmp_path) -> None:
    root = str(tmp_path)
    dsprites.generate_dsprites(root)
    assert registry.check_dataset("dsprites_full", root).ok
    code = textwrap.dedent("""
        import numpy as np
        from disentanglement_lib.data.ground_truth import named_data
        for name in ["dsprites_full", "dsprites_noshape", "color_dsprites",
                     "noisy_dsprites"]:
            data = named_data.get_named_ground_truth_data(name)
            rs = np.random.RandomState(0)
            factors = data.sample_factors(8, rs)
            obs = data.sample_observations_from_factors(factors, rs)
            print(name, list(data.factors_num_values), list(obs.shape[1:]),
                  list(data.factor_sizes), factors.max(axis=0).tolist())
    """)
    proc = _run_dlib(code, root)
    assert proc.returncode == 0, proc.stderr[-5000:]
    lines = [x.split(" ", 1) for x in proc.stdout.splitlines() if x.split(" ")[0] in (
        "dsprites_full", "dsprites_noshape", "color_dsprites", "noisy_dsprites")]
    got = {name: rest for name, rest in lines}
    sizes = "[1, 3, 6, 40, 32, 32]"
    assert got["dsprites_full"].startswith(f"[3, 6, 40, 32, 32] [64, 64, 1] {sizes}")
    assert got["dsprites_noshape"].startswith(f"[6, 40, 32, 32] [64, 64, 1] {sizes}")
    assert got["color_dsprites"].startswith(f"[3, 6, 40, 32, 32] [64, 64, 3] {sizes}")
    assert got["noisy_dsprites"].startswith(f"[3, 6, 40, 32, 32] [64, 64, 3] {sizes}")
