"""The lean dSprites-family and Shapes3D loaders give dlib's observations, image for image.

Each check runs dlib in a fresh subprocess (dlib reads its data paths from
DISENTANGLEMENT_LIB_DATA at import time) on small files in the real formats:
a dSprites subset from our generator, a synthetic scream.jpg, and Shapes3D
prefix blocks (stored as ``np.savez`` writes it, and compressed). In one
process every dataset is built twice through dlib's own classes, once with
``SPLITENC_LEAN_DATA=0`` (dlib's loader, the known answer) and once lean, and
both draw factors and observations from the same seed; the test compares the
arrays and the random state each leaves behind.
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

from splitenc_plugin.data import dsprites

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("disentanglement_lib") is None,
    reason="disentanglement_lib is not installed")

SUBSET = {"shape": [0, 1, 2], "scale": [0, 5], "orientation": [0, 7, 39],
          "posX": [0, 16, 31], "posY": [3, 30]}
SHAPES3D_BLOCK = (1, 1, 1, 2, 4, 15)
NUM = 64
TIMEOUT = 300

COMPARE = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from disentanglement_lib.data.ground_truth import dsprites, shapes3d
    from splitenc_plugin.data import lean_data

    out_path, block = sys.argv[1], json.loads(sys.argv[2])
    makers = {
        "dsprites_full": lambda: dsprites.DSprites([1, 2, 3, 4, 5]),
        "dsprites_noshape": lambda: dsprites.DSprites([2, 3, 4, 5]),
        "color_dsprites": lambda: dsprites.ColorDSprites([1, 2, 3, 4, 5]),
        "noisy_dsprites": lambda: dsprites.NoisyDSprites([1, 2, 3, 4, 5]),
        "scream_dsprites": lambda: dsprites.ScreamDSprites([1, 2, 3, 4, 5]),
        "abstract_dsprites": lambda: dsprites.AbstractDSprites(),
        "shapes3d": lambda: shapes3d.Shapes3D(),
    }
    arrays, info = {}, {}
    for mode in ("stock", "lean"):
        os.environ["SPLITENC_LEAN_DATA"] = "0" if mode == "stock" else "1"
        for name, make in makers.items():
            data = make()
            rs = np.random.RandomState(7)
            if name == "shapes3d":
                # A prefix block holds the first rows only: factors inside it.
                factors = np.stack([rs.randint(s, size=%(num)d) for s in block], axis=1)
                singles = [data.sample_observations_from_factors(
                    np.array([[rs.randint(s) for s in block]]), rs)[0] for _ in range(3)]
            else:
                factors = data.sample_factors(%(num)d, rs)
                # dlib's training generator: one example per call.
                singles = [data.sample_observations(1, rs)[0] for _ in range(3)]
            obs = data.sample_observations_from_factors(factors, rs)
            arrays[f"{mode}/{name}/factors"] = factors
            arrays[f"{mode}/{name}/obs"] = obs
            arrays[f"{mode}/{name}/singles"] = np.stack(singles)
            arrays[f"{mode}/{name}/next"] = rs.randint(2**31, size=4)
            attrs = {k: (np.asarray(v).tolist() if not hasattr(v, "__dict__") else
                         {kk: np.asarray(vv).tolist() for kk, vv in vars(v).items()})
                     for k, v in vars(data).items() if k not in ("images", "scream")}
            info[f"{mode}/{name}"] = {
                "attrs": attrs, "obs_dtype": str(obs.dtype),
                "images_type": type(data.images).__name__,
                "num_images": int(data.images.shape[0]),
                "observation_shape": list(data.observation_shape),
                "factors_num_values": [int(v) for v in data.factors_num_values],
            }
        if mode == "lean":
            first, second = makers["dsprites_full"](), makers["color_dsprites"]()
            info["same_images_object"] = first.images is second.images
            s1, s2 = makers["shapes3d"](), makers["shapes3d"]()
            info["same_shapes3d_object"] = s1.images is s2.images
            info["dsprites_source"] = lean_data.load_dsprites(dsprites.DSPRITES_PATH).source
            info["shapes3d_source"] = lean_data.load_shapes3d(shapes3d.SHAPES3D_PATH).source
    np.savez(out_path, **arrays)
    print("JSON" + json.dumps(info))
""") % {"num": NUM}


def _write_scream(root: str) -> None:
    from PIL import Image

    os.makedirs(os.path.join(root, "scream"), exist_ok=True)
    rng = np.random.RandomState(3)
    pixels = (rng.rand(300, 400, 3) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(os.path.join(root, "scream", "scream.jpg"), quality=90)


def _compare(root: str, cache: str) -> tuple[dict, dict]:
    out = os.path.join(root, "compare.npz")
    env = dict(os.environ, DISENTANGLEMENT_LIB_DATA=root, TF_CPP_MIN_LOG_LEVEL="2",
               SPLITENC_DATA_CACHE=cache)
    proc = subprocess.run([sys.executable, "-c", COMPARE, out,
                           json.dumps(SHAPES3D_BLOCK)], env=env, cwd=root,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr[-5000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("JSON"))
    with np.load(out) as data:
        arrays = {key: data[key] for key in data.files}
    return json.loads(line[4:]), arrays


SHARED_FIXTURE = shared_fixture_group(__name__)  # the tests of ``compared`` and ``data_root``


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("lean_data"))
    dsprites.generate_dsprites(root, subset=SUBSET)
    _write_scream(root)
    fixtures.write_shapes3d_fixture(root, block_sizes=SHAPES3D_BLOCK)
    return root


@pytest.fixture(scope="module")
def compared(data_root, tmp_path_factory) -> tuple[dict, dict]:
    return _compare(data_root, str(tmp_path_factory.mktemp("cache")))


DSPRITES_NAMES = ["dsprites_full", "dsprites_noshape", "color_dsprites", "noisy_dsprites",
                  "scream_dsprites", "abstract_dsprites"]


@SHARED_FIXTURE
@pytest.mark.parametrize("name", DSPRITES_NAMES + ["shapes3d"])
def test_same_observations_and_random_stream_as_dlib(compared, name) -> None:
    info, arrays = compared
    stock, lean = info[f"stock/{name}"], info[f"lean/{name}"]
    assert stock["images_type"] == "ndarray"
    assert lean["images_type"] == ("ScaledUint8Images" if name == "shapes3d"
                                   else "PackedBinaryImages")
    for part in ("factors", "obs", "singles", "next"):
        a, b = arrays[f"stock/{name}/{part}"], arrays[f"lean/{name}/{part}"]
        assert a.dtype == b.dtype and a.shape == b.shape, part
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: {part} differ")
    # Every attribute dlib's constructor sets, except the images themselves.
    assert lean["attrs"] == stock["attrs"]
    for key in ("obs_dtype", "num_images", "observation_shape", "factors_num_values"):
        assert lean[key] == stock[key], key


@SHARED_FIXTURE
def test_dsprites_observations_are_the_generated_images(compared) -> None:
    """Known answer independent of dlib: the renderer's pixels for the drawn factors."""
    _, arrays = compared
    factors, obs = arrays["lean/dsprites_full/factors"], arrays["lean/dsprites_full/obs"]
    classes = [np.asarray(SUBSET[n])[factors[:, k]]
               for k, n in enumerate(["shape", "scale", "orientation", "posX", "posY"])]
    np.testing.assert_array_equal(obs[..., 0], dsprites.render(*classes))
    assert obs.sum() > 0


@SHARED_FIXTURE
def test_dataset_is_loaded_once_per_process(compared) -> None:
    info, _ = compared
    assert info["same_images_object"] and info["same_shapes3d_object"]
    assert info["dsprites_source"] == "packed"  # streamed, then cached on disk
    assert info["shapes3d_source"] == "mmap"    # np.savez stores members uncompressed


@SHARED_FIXTURE
def test_second_process_maps_the_disk_cache(data_root, tmp_path) -> None:
    cache = str(tmp_path / "cache")
    first_info, _ = _compare(data_root, cache)
    assert first_info["dsprites_source"] == "packed"
    # One packed dSprites array, and a marker for each verified npz (dSprites, Shapes3D).
    assert sorted(os.listdir(cache))[1:] == ["verified"]
    assert len(os.listdir(os.path.join(cache, "verified"))) == 2
    info, arrays = _compare(data_root, cache)
    assert info["dsprites_source"] == "cache"
    assert len(os.listdir(cache)) == 2 and len(os.listdir(os.path.join(cache, "verified"))) == 2
    np.testing.assert_array_equal(arrays["lean/color_dsprites/obs"],
                                  arrays["stock/color_dsprites/obs"])


def test_cache_off_and_compressed_shapes3d(tmp_path) -> None:
    root = str(tmp_path)
    dsprites.generate_dsprites(root, subset=SUBSET)
    _write_scream(root)
    path = fixtures.write_shapes3d_fixture(root, block_sizes=SHAPES3D_BLOCK)
    with np.load(path) as data:
        images, labels = data["images"], data["labels"]
    np.savez_compressed(path.removesuffix(".npz"), images=images, labels=labels)
    info, arrays = _compare(root, "0")
    assert info["dsprites_source"] == "packed" and info["shapes3d_source"] == "memory"
    for name in ("dsprites_full", "shapes3d"):
        np.testing.assert_array_equal(arrays[f"lean/{name}/obs"], arrays[f"stock/{name}/obs"])


def test_non_binary_dsprites_falls_back_to_uint8(tmp_path) -> None:
    root = str(tmp_path)
    path = dsprites.generate_dsprites(root, subset={"orientation": [0], "posX": [0, 1],
                                                    "posY": [0, 1]})
    with np.load(path, allow_pickle=True) as data:
        members = {k: data[k] for k in data.files}
    members["imgs"] = members["imgs"] * np.uint8(200)  # 0/200: not bit-packable
    np.savez_compressed(path.removesuffix(".npz"), **members)
    code = textwrap.dedent("""
        import numpy as np
        from disentanglement_lib.data.ground_truth import dsprites
        from splitenc_plugin.data import lean_data
        lean = dsprites.DSprites([1, 2, 3, 4, 5])
        print(type(lean.images).__name__, lean_data.load_dsprites(dsprites.DSPRITES_PATH).source)
        np.testing.assert_array_equal(lean.images, np.load(dsprites.DSPRITES_PATH)["imgs"])
    """)
    env = dict(os.environ, DISENTANGLEMENT_LIB_DATA=root, TF_CPP_MIN_LOG_LEVEL="2",
               SPLITENC_DATA_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert proc.stdout.split() == ["ndarray", "uint8"]


# --------------------------------------------------------------------------
# Damaged files: what dlib's np.load would refuse (Bad CRC-32), the lean
# loaders refuse too, with one error naming the file and how to get it again.

def _shapes3d_fixture(root) -> str:
    return fixtures.write_shapes3d_fixture(str(root), block_sizes=SHAPES3D_BLOCK)


def test_damaged_pixels_of_a_mapped_shapes3d_file_are_refused(tmp_path, monkeypatch) -> None:
    from splitenc_plugin.data import lean_data

    monkeypatch.setenv(lean_data.CACHE_ENV, str(tmp_path / "cache"))
    path = _shapes3d_fixture(tmp_path / "data")
    fixtures.damage_npz_member(path, "images.npy")  # a pixel byte: the map would serve it
    with pytest.raises(lean_data.DamagedFileError) as caught:
        lean_data.load_shapes3d(path)
    assert str(caught.value) == (
        f"{path} is damaged (Bad CRC-32 for file 'images.npy'); dlib could not read it "
        f"either. To get it again, dlib_download_data does not fetch it: on a machine with "
        f"internet download 3dshapes.h5 (github.com/deepmind/3d-shapes), then run "
        f"splitenc_data shapes3d --from 3dshapes.h5 --output_dir {tmp_path / 'data'} (it "
        f"checks the factor layout and writes {path})."), str(caught.value)
    assert not os.path.exists(tmp_path / "cache" / "verified")  # nothing remembered


def test_a_verified_file_is_read_once_per_identity(tmp_path, monkeypatch) -> None:
    from splitenc_plugin.data import lean_data

    monkeypatch.setenv(lean_data.CACHE_ENV, str(tmp_path / "cache"))
    path = _shapes3d_fixture(tmp_path)
    assert lean_data.verify_npz(path) is True      # read and checked
    assert lean_data.verify_npz(path) is False     # remembered: nothing read
    os.utime(path, ns=(1, 1))                      # another identity (same bytes)
    assert lean_data.verify_npz(path) is True
    monkeypatch.setenv(lean_data.CACHE_ENV, "0")   # no cache directory: once per process
    os.utime(path, ns=(2, 2))
    assert lean_data.verify_npz(path) is True and lean_data.verify_npz(path) is False
    again = subprocess.run(
        [sys.executable, "-c", ("import sys; from splitenc_plugin.data import lean_data; "
         "print(lean_data.verify_npz(sys.argv[1]))"), path],
        env=dict(os.environ), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert again.stdout.split() == ["True"], again.stderr[-3000:]  # another process reads it
    fixtures.damage_npz_member(path, "labels.npy")
    with pytest.raises(lean_data.DamagedFileError, match="Bad CRC-32 for file 'labels.npy'"):
        lean_data.verify_npz(path)


def test_a_damaged_file_is_refused_even_when_its_packed_cache_exists(tmp_path) -> None:
    # The packed dSprites cache is named by the npz's stored CRCs, which damage
    # does not change: the file itself is checked again when it changed.
    root = str(tmp_path / "data")
    path = dsprites.generate_dsprites(root, subset=SUBSET)
    cache = str(tmp_path / "cache")
    env = dict(os.environ, SPLITENC_DATA_CACHE=cache)
    load = ("import sys; from splitenc_plugin.data import lean_data; "
            "print(lean_data.load_dsprites(sys.argv[1]).source)")
    first = subprocess.run([sys.executable, "-c", load, path], env=env, capture_output=True,
                           text=True, timeout=TIMEOUT, check=False)
    assert first.stdout.split() == ["packed"], first.stderr[-3000:]
    fixtures.damage_npz_member(path, "imgs.npy")
    second = subprocess.run([sys.executable, "-c", load, path], env=env, capture_output=True,
                            text=True, timeout=TIMEOUT, check=False)
    assert second.returncode != 0 and "DamagedFileError" in second.stderr, second.stdout
    assert f"{path} is damaged (" in second.stderr
    assert f"splitenc_data dsprites --output_dir {root}" in second.stderr


def test_dlib_stops_with_one_line_on_a_damaged_dsprites_file(tmp_path) -> None:
    # Through dlib's own constructor (the lean loader streams the file): one
    # line naming the file and the fix, not zipfile's BadZipFile traceback.
    root = str(tmp_path)
    path = dsprites.generate_dsprites(root, subset=SUBSET)
    fixtures.damage_npz_member(path, "imgs.npy")
    code = ("from disentanglement_lib.data.ground_truth import dsprites\n"
            "dsprites.DSprites([1, 2, 3, 4, 5])")
    env = dict(os.environ, DISENTANGLEMENT_LIB_DATA=root, TF_CPP_MIN_LOG_LEVEL="2",
               SPLITENC_DATA_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "BadZipFile" not in proc.stderr, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if path in x]
    assert len(lines) == 1 and "is damaged (" in lines[0] and "splitenc_data dsprites" in lines[0]
