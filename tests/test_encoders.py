"""Split Encoder (paper Sec 4.2, Fig 1): sizes, no sharing, equivalence, FactorVAE wiring.

Every expectation is a known answer computed independently of the code under
test: parameter counts from closed-form layer-by-layer formulas written out
here, outputs from the naive per-factor ``tf.layers`` encoder given the same
weights, variable lists from what dlib's FactorVAE hands to its optimizers.
"""

from __future__ import annotations

import math

import disentanglement_lib.methods.shared.architectures as dlib_arch
import disentanglement_lib.methods.shared.optimizers as dlib_optimizers
import disentanglement_lib.methods.unsupervised.vae as dlib_vae
import gin
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from conftest import assert_ok, run_python

import splitenc_plugin.model.encoders as enc
from splitenc_plugin.compat import runtime
from splitenc_plugin.errors import ConfigError

BATCH = 2
IMAGE = (64, 64, 1)


# ---------------------------------------------------------------------------
# Closed-form expectations (written out independently of encoders._costs).
# ---------------------------------------------------------------------------
def expected_conv_encoder_params(k: int, channels: int = 1) -> int:
    """dlib conv_encoder on 64x64: e1..e4 convs, e5 dense 1024->256, heads 256->K."""
    e1 = 4 * 4 * channels * 32 + 32
    e2 = 4 * 4 * 32 * 32 + 32
    e3 = 2 * 2 * 32 * 64 + 64
    e4 = 2 * 2 * 64 * 64 + 64
    e5 = (4 * 4 * 64) * 256 + 256
    heads = 2 * (256 * k + k)
    return e1 + e2 + e3 + e4 + e5 + heads


def expected_split_conv_params(k: int, width: int, shared: int, channels: int = 1) -> int:
    """Shared convs once, the other convs K times, K dense 1024->width, 2K scalar heads."""
    convs = [4 * 4 * channels * 32 + 32, 4 * 4 * 32 * 32 + 32,
             2 * 2 * 32 * 64 + 64, 2 * 2 * 64 * 64 + 64]
    total = sum(convs[:shared]) + k * sum(convs[shared:])
    total += k * (1024 * width + width)  # 64 / 2**4 = 4; 4 * 4 * 64 = 1024 features
    total += 2 * k * (width + 1)
    return total


def expected_wide_conv_params(k: int, width: int, channels: int = 1) -> int:
    """dlib conv_encoder with e5 widened: convs once, dense 1024->width, heads width->K."""
    convs = (4 * 4 * channels * 32 + 32) + (4 * 4 * 32 * 32 + 32) \
        + (2 * 2 * 32 * 64 + 64) + (2 * 2 * 64 * 64 + 64)
    return convs + (1024 * width + width) + 2 * (width * k + k)


def expected_fc_encoder_params(k: int, pixels: int = 64 * 64) -> int:
    return (pixels * 1200 + 1200) + (1200 * 1200 + 1200) + 2 * (1200 * k + k)


def expected_split_fc_params(k: int, width: int, shared: int, pixels: int = 64 * 64) -> int:
    if shared == 0:  # e1, e2 per branch
        return k * (pixels * width + width) + k * (width * width + width) + 2 * k * (width + 1)
    if shared == 1:  # e1 shared, e2 per branch
        return (pixels * 1200 + 1200) + k * (1200 * width + width) + 2 * k * (width + 1)
    # shared == 2: dlib's hidden layers, K scalar heads
    return (pixels * 1200 + 1200) + (1200 * 1200 + 1200) + 2 * k * (1200 + 1)


def _trainable_sizes() -> dict[str, tuple[int, ...]]:
    return {v.op.name: tuple(v.shape.as_list()) for v in tf.trainable_variables()}


def _count(sizes: dict[str, tuple[int, ...]]) -> int:
    return sum(int(np.prod(shape)) for shape in sizes.values())


def _images(batch: int = BATCH, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).uniform(size=(batch, *IMAGE)).astype(np.float32)


# ---------------------------------------------------------------------------
# Import hygiene
# ---------------------------------------------------------------------------
def test_importing_encoders_does_not_import_tensorflow() -> None:
    proc = run_python("import sys, splitenc_plugin.model.encoders\n"
                      "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
    assert_ok(proc)


# ---------------------------------------------------------------------------
# Shapes and parameter counts
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "width", "shared"),
                         [(10, 256, 4), (3, 16, 0), (5, 32, 2), (1, 8, 3)])
def test_split_conv_shapes_and_parameter_count(k: int, width: int, shared: int) -> None:
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, *IMAGE])
        means, log_var = dlib_arch.make_gaussian_encoder(
            x, num_latent=k, encoder_fn=lambda **kw: enc.split_conv_encoder(
                **kw, num_shared_layers=shared, branch_width=width))
        sizes = _trainable_sizes()
        assert means.shape.as_list() == [None, k]
        assert log_var.shape.as_list() == [None, k]
        assert all(name.startswith("encoder/") for name in sizes)
        assert _count(sizes) == expected_split_conv_params(k, width, shared)
        assert enc.encoder_parameter_count("split_conv_encoder", k, IMAGE, shared, width) == \
            expected_split_conv_params(k, width, shared)
        if k * width <= 512:  # run the small ones
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                m, lv = sess.run([means, log_var], {x: _images(3)})
            assert m.shape == (3, k) and lv.shape == (3, k)
            assert np.all(np.isfinite(m)) and np.all(np.isfinite(lv))


@pytest.mark.parametrize("shared", [0, 1, 2, 3, 4])
def test_shared_conv_layers_are_dlibs(shared: int) -> None:
    """The shared block has dlib conv_encoder's variable names and shapes, nothing else."""
    with tf.Graph().as_default():
        dlib_arch.conv_encoder(tf.placeholder(tf.float32, [None, *IMAGE]), 4)
        dlib_sizes = _trainable_sizes()
    with tf.Graph().as_default():
        enc.split_conv_encoder(tf.placeholder(tf.float32, [None, *IMAGE]), 4,
                               num_shared_layers=shared, branch_width=8)
        ours = _trainable_sizes()
    shared_names = {f"e{i}/{p}" for i in range(1, shared + 1) for p in ("kernel", "bias")}
    assert {n for n in ours if not n.startswith(enc.BRANCH_SCOPE + "/")} == shared_names
    for name in shared_names:
        assert ours[name] == dlib_sizes[name]
    for i in range(shared + 1, 5):  # per-branch convs: dlib's shape with a branch axis
        assert ours[f"branches/e{i}/kernel"] == (4, *dlib_sizes[f"e{i}/kernel"])
        assert ours[f"branches/e{i}/bias"] == (4, *dlib_sizes[f"e{i}/bias"])


@pytest.mark.parametrize(("k", "width", "shared"),
                         [(10, 1200, 1), (3, 16, 0), (4, 32, 2), (2, 64, 1)])
def test_split_fc_shapes_and_parameter_count(k: int, width: int, shared: int) -> None:
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, *IMAGE])
        means, log_var = dlib_arch.make_gaussian_encoder(
            x, num_latent=k, encoder_fn=lambda **kw: enc.split_fc_encoder(
                **kw, num_shared_layers=shared, branch_width=width))
        sizes = _trainable_sizes()
        assert means.shape.as_list() == [None, k] and log_var.shape.as_list() == [None, k]
        assert all(name.startswith("encoder/") for name in sizes)
        assert _count(sizes) == expected_split_fc_params(k, width, shared)
        assert enc.encoder_parameter_count("split_fc_encoder", k, IMAGE, shared, width) == \
            expected_split_fc_params(k, width, shared)
        if shared == 0:
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                m = sess.run(means, {x: _images(3)})
            assert m.shape == (3, k) and np.all(np.isfinite(m))


@pytest.mark.parametrize("k", [1, 10])
def test_vanilla_parameter_counts_match_dlib_graphs(k: int) -> None:
    for kind, fn, expected in (("conv_encoder", dlib_arch.conv_encoder, expected_conv_encoder_params),
                               ("fc_encoder", dlib_arch.fc_encoder, expected_fc_encoder_params)):
        with tf.Graph().as_default():
            fn(tf.placeholder(tf.float32, [None, *IMAGE]), k)
            assert _count(_trainable_sizes()) == expected(k) == enc.encoder_parameter_count(kind, k)


def test_parameter_count_defaults_and_other_input_shapes() -> None:
    assert enc.encoder_parameter_count("split_conv_encoder", 10) == \
        expected_split_conv_params(10, 256, 4)
    assert enc.encoder_parameter_count("split_fc_encoder", 10) == \
        expected_split_fc_params(10, 1200, 1)
    # 3 channels only changes e1 (conv) / the first dense layer (fc).
    assert enc.encoder_parameter_count("split_conv_encoder", 5, (64, 64, 3), 0, 8) == \
        expected_split_conv_params(5, 8, 0, channels=3)
    assert enc.encoder_parameter_count("fc_encoder", 5, (64, 64, 3)) == \
        expected_fc_encoder_params(5, pixels=64 * 64 * 3)


# The control encoders' default widths, derived from the closed forms above
# (10 latents, 64x64x1): the largest branch width at which the default split
# has no more parameters than dlib's conv_encoder, and the e5 width whose
# count is closest to the default split encoder's.
PAPER_K = 10
MATCHED_WIDTH = max(w for w in range(1, 257)
                    if expected_split_conv_params(PAPER_K, w, 4)
                    <= expected_conv_encoder_params(PAPER_K))
WIDE_WIDTH = min(range(1, 10_000), key=lambda w: abs(
    expected_wide_conv_params(PAPER_K, w) - expected_split_conv_params(PAPER_K, 256, 4)))


def test_control_widths_are_the_matched_ones() -> None:
    assert (MATCHED_WIDTH, WIDE_WIDTH) == (26, 2516)
    # The known answers the README's table states.
    assert expected_split_conv_params(PAPER_K, MATCHED_WIDTH, 4) == 308_704
    assert expected_conv_encoder_params(PAPER_K) == 309_204
    assert expected_wide_conv_params(PAPER_K, WIDE_WIDTH) == 2_670_904
    assert expected_split_conv_params(PAPER_K, 256, 4) == 2_670_804
    assert enc.encoder_parameter_count("matched_split_conv_encoder", PAPER_K) == \
        expected_split_conv_params(PAPER_K, MATCHED_WIDTH, 4)
    assert enc.encoder_parameter_count("wide_conv_encoder", PAPER_K) == \
        expected_wide_conv_params(PAPER_K, WIDE_WIDTH)


@pytest.mark.parametrize(("fn", "kind", "expected"), [
    (enc.matched_split_conv_encoder, "matched_split_conv_encoder",
     lambda: expected_split_conv_params(PAPER_K, MATCHED_WIDTH, 4)),
    (enc.wide_conv_encoder, "wide_conv_encoder",
     lambda: expected_wide_conv_params(PAPER_K, WIDE_WIDTH)),
], ids=["matched", "wide"])
def test_control_encoders_at_their_defaults_have_the_matched_counts(fn, kind, expected) -> None:
    """Built with their default widths (as the shipped configs use them) through dlib."""
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, *IMAGE])
        means, log_var = dlib_arch.make_gaussian_encoder(x, num_latent=PAPER_K, encoder_fn=fn)
        sizes = _trainable_sizes()
    assert means.shape.as_list() == [None, PAPER_K] and log_var.shape.as_list() == [None, PAPER_K]
    assert all(name.startswith("encoder/") for name in sizes)
    assert _count(sizes) == expected() == enc.encoder_parameter_count(kind, PAPER_K)


@pytest.mark.parametrize(("k", "width", "shared"), [(3, 16, 0), (5, 8, 2), (4, 26, 4)])
def test_matched_split_conv_is_split_conv_under_its_own_name(k: int, width: int,
                                                             shared: int) -> None:
    """Same variables (names, shapes) and counts as split_conv_encoder with the same arguments."""
    built = {}
    for fn in (enc.split_conv_encoder, enc.matched_split_conv_encoder):
        with tf.Graph().as_default():
            fn(tf.placeholder(tf.float32, [None, *IMAGE]), k, num_shared_layers=shared,
               branch_width=width)
            built[fn] = _trainable_sizes()
    assert built[enc.matched_split_conv_encoder] == built[enc.split_conv_encoder]
    assert _count(built[enc.split_conv_encoder]) == expected_split_conv_params(k, width, shared) \
        == enc.encoder_parameter_count("matched_split_conv_encoder", k, IMAGE, shared, width)


@pytest.mark.parametrize(("k", "width", "channels"), [(1, 8, 1), (10, 300, 1), (4, 16, 3)])
def test_wide_conv_shapes_and_parameter_count(k: int, width: int, channels: int) -> None:
    """dlib conv_encoder's variables, e5 and the heads resized to the dense width."""
    image = (64, 64, channels)
    with tf.Graph().as_default():
        dlib_arch.conv_encoder(tf.placeholder(tf.float32, [None, *image]), k)
        dlib_sizes = _trainable_sizes()
    with tf.Graph().as_default():
        enc.wide_conv_encoder(tf.placeholder(tf.float32, [None, *image]), k, dense_width=width)
        ours = _trainable_sizes()
    assert set(ours) == set(dlib_sizes)  # dlib's layer names, no branches
    resized = {"e5/kernel": (1024, width), "e5/bias": (width,),
               "means/kernel": (width, k), "log_var/kernel": (width, k)}
    assert ours == {**dlib_sizes, **resized}
    assert _count(ours) == expected_wide_conv_params(k, width, channels) == \
        enc.encoder_parameter_count("wide_conv_encoder", k, image, dense_width=width)


def test_wide_conv_at_dlib_width_is_dlibs_conv_encoder_value_for_value() -> None:
    """dense_width = 256 is dlib's conv_encoder: same seeded initial weights, same outputs."""
    outputs = []
    for fn in (dlib_arch.conv_encoder, lambda x, k: enc.wide_conv_encoder(x, k, dense_width=256)):
        with tf.Graph().as_default():
            tf.set_random_seed(11)
            with tf.variable_scope("encoder"):
                means, log_var = fn(tf.constant(_images(3, seed=2)), 4)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                outputs.append(sess.run([means, log_var]))
    (dm, dlv), (wm, wlv) = outputs
    np.testing.assert_array_equal(wm, dm)
    np.testing.assert_array_equal(wlv, dlv)


def test_wide_conv_is_one_shared_layer() -> None:
    """Every latent's mean and log-variance depends on every unit of the shared e5 layer."""
    k, width = 3, 40
    with tf.Graph().as_default() as graph:
        tf.set_random_seed(5)
        with tf.variable_scope("encoder"):
            means, log_var = enc.wide_conv_encoder(tf.constant(_images(2)), k, dense_width=width)
        e5 = graph.get_tensor_by_name("encoder/e5/Relu:0")  # tf.layers' dense e5 activation
        assert e5.shape.as_list() == [2, width]
        assert not [v for v in tf.trainable_variables() if f"/{enc.BRANCH_SCOPE}/" in v.op.name]
        grads = {(name, j): tf.gradients(out[:, j], e5)[0]
                 for name, out in (("means", means), ("log_var", log_var)) for j in range(k)}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            values = sess.run(grads)
    for key, grad in values.items():
        assert grad.shape == (2, width)
        assert np.all(grad != 0), f"{key} does not depend on every e5 unit"


def test_flops_closed_form() -> None:
    """Multiply-adds per example; 'same' padding, stride 2: 64 -> 32 -> 16 -> 8 -> 4."""
    convs = [32 * 32 * 4 * 4 * 1 * 32, 16 * 16 * 4 * 4 * 32 * 32,
             8 * 8 * 2 * 2 * 32 * 64, 4 * 4 * 2 * 2 * 64 * 64]
    k = 10
    assert enc.encoder_flops("conv_encoder", k) == sum(convs) + 1024 * 256 + 2 * 256 * k
    assert enc.encoder_flops("split_conv_encoder", k) == \
        sum(convs) + k * 1024 * 256 + 2 * k * 256
    assert enc.encoder_flops("split_conv_encoder", k, IMAGE, 2, 64) == \
        sum(convs[:2]) + k * sum(convs[2:]) + k * 1024 * 64 + 2 * k * 64
    assert enc.encoder_flops("fc_encoder", k) == 4096 * 1200 + 1200 * 1200 + 2 * 1200 * k
    assert enc.encoder_flops("split_fc_encoder", k) == \
        4096 * 1200 + k * 1200 * 1200 + 2 * k * 1200
    assert enc.encoder_flops("split_fc_encoder", k, IMAGE, 0, 100) == \
        k * (4096 * 100 + 100 * 100) + 2 * k * 100
    assert enc.encoder_flops("matched_split_conv_encoder", k) == \
        sum(convs) + k * 1024 * MATCHED_WIDTH + 2 * k * MATCHED_WIDTH
    assert enc.encoder_flops("matched_split_conv_encoder", k, IMAGE, 2, 64) == \
        enc.encoder_flops("split_conv_encoder", k, IMAGE, 2, 64)
    assert enc.encoder_flops("wide_conv_encoder", k) == \
        sum(convs) + 1024 * WIDE_WIDTH + 2 * WIDE_WIDTH * k
    assert enc.encoder_flops("wide_conv_encoder", k, dense_width=256) == \
        enc.encoder_flops("conv_encoder", k)


# ---------------------------------------------------------------------------
# No parameter of the no-shared block is shared between factors
# ---------------------------------------------------------------------------
def _branch_variables() -> list[tf.Variable]:
    return [v for v in tf.trainable_variables() if f"/{enc.BRANCH_SCOPE}/" in v.op.name]


@pytest.mark.parametrize(("fn", "shared", "width"), [
    (enc.split_conv_encoder, 4, 8), (enc.split_conv_encoder, 2, 8),
    (enc.split_conv_encoder, 0, 8),
    (enc.split_fc_encoder, 1, 8), (enc.split_fc_encoder, 0, 8), (enc.split_fc_encoder, 2, 8),
    # The narrow, parameter-matched split at its default width (None = default).
    (enc.matched_split_conv_encoder, 4, None), (enc.matched_split_conv_encoder, 2, None),
])
def test_no_parameter_shared_between_factors(fn, shared: int, width: int | None) -> None:
    k = 3
    widths = {} if width is None else {"branch_width": width}
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        x = tf.constant(_images())
        with tf.variable_scope("encoder"):
            means, log_var = fn(x, k, num_shared_layers=shared, **widths)
        branch_vars = _branch_variables()
        shared_vars = [v for v in tf.trainable_variables() if v not in branch_vars]
        assert branch_vars and len(shared_vars) == 2 * shared
        outputs = {"means": means, "log_var": log_var}
        grads = {}
        for out_name, out in outputs.items():
            for j in range(k):
                grads[out_name, j] = tf.gradients(tf.reduce_sum(out[:, j]),
                                                  branch_vars + shared_vars)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            values = sess.run({key: [g if g is not None else tf.constant(0.0) for g in gs]
                               for key, gs in grads.items()})
    other_head = {"means": "log_var", "log_var": "means"}
    for (out_name, j), gs in values.items():
        branch_grads, shared_grads = gs[:len(branch_vars)], gs[len(branch_vars):]
        for var, grad in zip(branch_vars, branch_grads):
            if f"/{other_head[out_name]}/" in var.op.name:
                # The other head is not on this output's path at all.
                assert np.all(grad == 0), (out_name, j, var.op.name)
                continue
            grad = np.asarray(grad)
            assert grad.shape[0] == k
            for i in range(k):
                if i == j:
                    assert np.any(grad[i] != 0), f"d {out_name}_{j} / {var.op.name}[{i}] is zero"
                else:
                    assert np.all(grad[i] == 0), f"d {out_name}_{j} / {var.op.name}[{i}] != 0"
        for var, grad in zip(shared_vars, shared_grads):
            if var.op.name.endswith("/kernel"):
                assert np.any(np.asarray(grad) != 0), f"shared {var.op.name} gets no gradient"


# ---------------------------------------------------------------------------
# Batched encoder == naive per-factor encoder with the same weights
# ---------------------------------------------------------------------------
def _copy_looped_into_batched(k: int) -> list:
    """Assign ops: batched variable = the K per-branch tf.layers variables stacked."""
    batched = {v.op.name[len("batched/"):]: v for v in tf.global_variables()
               if v.op.name.startswith("batched/")}
    looped = {v.op.name[len("looped/"):]: v for v in tf.global_variables()
              if v.op.name.startswith("looped/")}
    ops = []
    for name, var in batched.items():
        if name.startswith(enc.BRANCH_SCOPE + "/"):
            leaf = name[len(enc.BRANCH_SCOPE) + 1:]  # e.g. "e5/kernel"
            parts = [tf.reshape(looped[f"branch_{j}/{leaf}"], var.shape[1:]) for j in range(k)]
            ops.append(tf.assign(var, tf.stack(parts)))
        else:
            ops.append(tf.assign(var, looped[name]))
    covered = {n for n in looped if not n.startswith("branch_")}
    covered |= {f"branch_{j}/{n[len(enc.BRANCH_SCOPE) + 1:]}" for n in batched
                if n.startswith(enc.BRANCH_SCOPE + "/") for j in range(k)}
    assert covered == set(looped), "every looped variable has a batched counterpart"
    return ops


@pytest.mark.parametrize(("shared", "grouped"),
                         [(4, True), (3, True), (1, True), (0, True), (1, False), (0, False)])
def test_batched_equals_looped_with_same_weights(shared: int, grouped: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward pass; grouped=False forces the per-branch conv fallback (no-oneDNN CPUs)."""
    if grouped and not runtime.onednn_enabled():
        # TF's own CPU kernels refuse grouped convs fused with bias + relu.
        pytest.skip("grouped conv2d needs oneDNN on CPU, off in this process "
                    "(TF_ENABLE_ONEDNN_OPTS=1 turns it on)")
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: grouped)  # the kernel choice
    k, width = 3, 16
    with tf.Graph().as_default():
        x = tf.constant(_images(3, seed=5))
        with tf.variable_scope("batched"):
            batched = enc.split_conv_encoder(x, k, num_shared_layers=shared, branch_width=width)
        with tf.variable_scope("looped"):
            looped = enc.looped_split_conv_encoder(x, k, num_shared_layers=shared,
                                                   branch_width=width)
        sizes = _trainable_sizes()
        n_batched = _count({n: s for n, s in sizes.items() if n.startswith("batched/")})
        n_looped = _count({n: s for n, s in sizes.items() if n.startswith("looped/")})
        assert n_batched == n_looped == expected_split_conv_params(k, width, shared)
        copy = _copy_looped_into_batched(k)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            before = sess.run(batched)
            sess.run(copy)
            (bm, blv), (lm, llv) = sess.run([batched, looped])
    # Independently initialised weights give different outputs: the copy matters.
    assert not np.allclose(before[0], lm, atol=1e-3)
    np.testing.assert_allclose(bm, lm, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(blv, llv, rtol=1e-4, atol=1e-5)


GROUPED_PATH_TESTS = ("test_batched_equals_looped_with_same_weights or "
                      "test_fallback_conv_gradients_match_grouped")


def test_grouped_path_is_tested_under_onednn_where_tf_leaves_it_off() -> None:
    """Where this process runs without oneDNN (CPUs without AVX-512), the grouped
    conv tests above skip; run them again in a process with it switched on."""
    if runtime.onednn_enabled():
        pytest.skip("oneDNN is on in this process: the grouped-path tests ran above")
    proc = run_python(
        f"import sys, pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
        f"{__file__!r}, '-k', {GROUPED_PATH_TESTS!r}]))",
        env={"TF_ENABLE_ONEDNN_OPTS": "1"})
    assert_ok(proc)
    summary = proc.stdout.strip().splitlines()[-1]  # pytest's closing line
    assert summary.startswith("7 passed") and "skipped" not in summary, summary


def test_fallback_conv_gradients_match_grouped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both conv paths give the same weight gradients (where grouped backprop is supported)."""
    if not runtime.onednn_enabled():
        pytest.skip("grouped conv2d gradients need oneDNN on CPU")
    results = []
    for grouped in (True, False):
        monkeypatch.setattr(runtime, "onednn_enabled", lambda g=grouped: g)
        with tf.Graph().as_default():
            tf.set_random_seed(3)
            means, log_var = enc.split_conv_encoder(tf.constant(_images()), 3,
                                                    num_shared_layers=1, branch_width=8)
            variables = tf.trainable_variables()
            grads = tf.gradients(tf.reduce_sum(means) + tf.reduce_sum(log_var), variables)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                results.append(sess.run(grads))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------
# Initialisation: each branch slice as a standalone tf.layers layer
# ---------------------------------------------------------------------------
def test_branch_slices_are_initialised_like_standalone_layers() -> None:
    k = 3
    with tf.Graph().as_default():
        tf.set_random_seed(7)
        enc.split_conv_encoder(tf.constant(_images()), k, num_shared_layers=0)
        variables = {v.op.name: v for v in tf.trainable_variables()}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            values = sess.run(variables)
    # e5: 1024 -> 256 per branch; glorot limit sqrt(6 / (1024 + 256)), std limit / sqrt(3).
    limit = math.sqrt(6 / (1024 + 256))
    e5 = values["branches/e5/kernel"]
    for j in range(k):
        assert np.abs(e5[j]).max() <= limit
        assert abs(e5[j].std() - limit / math.sqrt(3)) < 0.02 * limit / math.sqrt(3)
    assert not np.allclose(e5[0], e5[1])
    # e1 per branch: fan_in 4 * 4 * 1, fan_out 4 * 4 * 32 (512 draws: max is near the limit).
    limit = math.sqrt(6 / (16 + 512))
    for j in range(k):
        assert 0.9 * limit <= np.abs(values["branches/e1/kernel"][j]).max() <= limit
    # heads: 256 -> 1.
    limit = math.sqrt(6 / (256 + 1))
    assert 0.9 * limit <= np.abs(values["branches/means/kernel"]).max() <= limit
    for name, value in values.items():
        if name.endswith("/bias"):
            assert np.all(value == 0), name


# ---------------------------------------------------------------------------
# Validation: ConfigError before anything is built
# ---------------------------------------------------------------------------
INVALID_ARGUMENTS = [  # (encoder, its bad arguments, the error's first words)
    (enc.split_conv_encoder, {"num_shared_layers": 7},
     "split_conv_encoder.num_shared_layers must be an integer in 0..4, got 7"),
    (enc.split_conv_encoder, {"num_shared_layers": -1},
     "split_conv_encoder.num_shared_layers must be an integer in 0..4, got -1"),
    (enc.split_conv_encoder, {"num_shared_layers": 2.0},
     "split_conv_encoder.num_shared_layers must be an integer in 0..4, got 2.0"),
    (enc.split_conv_encoder, {"num_shared_layers": True},
     "split_conv_encoder.num_shared_layers must be an integer in 0..4, got True"),
    (enc.split_conv_encoder, {"branch_width": 0},
     "split_conv_encoder.branch_width must be an integer >= 1, got 0"),
    (enc.split_conv_encoder, {"num_latent": 0},
     "encoder.num_latent must be an integer >= 1, got 0"),
    (enc.looped_split_conv_encoder, {"num_shared_layers": 5},
     "looped_split_conv_encoder.num_shared_layers must be an integer in 0..4, got 5"),
    (enc.split_fc_encoder, {"num_shared_layers": 3},
     "split_fc_encoder.num_shared_layers must be an integer in 0..2, got 3"),
    (enc.split_fc_encoder, {"branch_width": -4},
     "split_fc_encoder.branch_width must be an integer >= 1, got -4"),
    (enc.matched_split_conv_encoder, {"branch_width": 0},
     "matched_split_conv_encoder.branch_width must be an integer >= 1, got 0"),
    (enc.matched_split_conv_encoder, {"num_shared_layers": 5},
     "matched_split_conv_encoder.num_shared_layers must be an integer in 0..4, got 5"),
    (enc.wide_conv_encoder, {"dense_width": 0},
     "wide_conv_encoder.dense_width must be an integer >= 1, got 0"),
    (enc.wide_conv_encoder, {"dense_width": 12.5},
     "wide_conv_encoder.dense_width must be an integer >= 1, got 12.5"),
]


@pytest.mark.parametrize(("fn", "kwargs", "message"), INVALID_ARGUMENTS)
def test_invalid_arguments_raise_config_error_before_building(fn, kwargs, message) -> None:
    args = {"num_latent": 4, **kwargs}
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, *IMAGE])
        ops_before = len(graph.get_operations())
        with pytest.raises(ConfigError) as info:
            fn(x, **args)
        assert len(graph.get_operations()) == ops_before
    assert str(info.value).startswith(message)


def test_invalid_gin_binding_raises_config_error(clean_gin) -> None:
    gin.parse_config(["encoder.num_latent = 4",
                      "encoder.encoder_fn = @split_conv_encoder",
                      "split_conv_encoder.num_shared_layers = 7"])
    with tf.Graph().as_default(), pytest.raises(ConfigError, match=r"num_shared_layers = 4"):
        dlib_arch.make_gaussian_encoder(tf.placeholder(tf.float32, [None, *IMAGE]))


def _bind(encoder: str, kwargs: dict) -> list[str]:
    """Gin bindings of ``kwargs`` for ``encoder`` (num_latent: ``encoder.num_latent``)."""
    values = {"encoder.num_latent": 4,
              **{("encoder." if k == "num_latent" else f"{encoder}.") + k: v
                 for k, v in kwargs.items()}}
    return [f"{key} = {value!r}" for key, value in values.items()]


@pytest.mark.parametrize(("fn", "kwargs", "message"), INVALID_ARGUMENTS)
def test_preflight_finds_the_selected_encoders_bad_binding(fn, kwargs, message,
                                                           clean_gin) -> None:
    # What the graph build would raise, from the bindings alone (no graph):
    # the compat layer runs this before dlib loads its data.
    gin.parse_config([f"encoder.encoder_fn = @{fn.__name__}", *_bind(fn.__name__, kwargs)])
    with pytest.raises(ConfigError) as info:
        enc.preflight()
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("selected", ["conv_encoder", "split_conv_encoder"])
def test_preflight_reads_only_the_selected_encoder(selected, clean_gin) -> None:
    # A binding of an encoder the model does not use is never read (a study
    # may bind it for every model); the selected one's valid bindings pass.
    gin.parse_config([f"encoder.encoder_fn = @{selected}",
                      *_bind("wide_conv_encoder", {"dense_width": 0}),
                      *_bind("split_conv_encoder", {"num_shared_layers": 2, "branch_width": 8})])
    enc.preflight()
    with tf.Graph().as_default():  # and the graph build agrees
        means, _ = dlib_arch.make_gaussian_encoder(tf.placeholder(tf.float32, [None, *IMAGE]))
    assert means.shape.as_list() == [None, 4]


def test_preflight_follows_macros_as_the_call_does(clean_gin) -> None:
    # A macro's value is what the encoder receives: valid ones pass, bad ones
    # are named as the graph build names them.
    gin.parse_config(["NUM_LATENT = 4", "SHARED = 3", "encoder.encoder_fn = @split_conv_encoder",
                      "encoder.num_latent = %NUM_LATENT",
                      "split_conv_encoder.num_shared_layers = %SHARED"])
    enc.preflight()
    gin.parse_config(["SHARED = 7"])
    with pytest.raises(ConfigError, match="num_shared_layers must be an integer in 0..4, got 7"):
        enc.preflight()


def test_preflight_leaves_an_encoder_selected_in_a_scope_to_the_graph_build(clean_gin) -> None:
    # @s/split_conv_encoder reads s/'s bindings first: the unscoped 7 is not what it gets.
    gin.parse_config(["encoder.num_latent = 4", "encoder.encoder_fn = @s/split_conv_encoder",
                      "s/split_conv_encoder.num_shared_layers = 3",
                      "split_conv_encoder.num_shared_layers = 7"])
    enc.preflight()
    with tf.Graph().as_default():  # and the graph build agrees
        means, _ = dlib_arch.make_gaussian_encoder(tf.placeholder(tf.float32, [None, *IMAGE]))
    assert means.shape.as_list() == [None, 4]


def test_count_functions_validate_their_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown encoder kind 'conv'"):
        enc.encoder_parameter_count("conv", 10)
    with pytest.raises(ConfigError, match="conv_encoder has no num_shared_layers"):
        enc.encoder_flops("conv_encoder", 10, IMAGE, 2)
    with pytest.raises(ConfigError, match="split_fc_encoder.branch_width"):
        enc.encoder_flops("split_fc_encoder", 10, IMAGE, 1, 0)
    with pytest.raises(ConfigError, match="wide_conv_encoder has no branch_width"):
        enc.encoder_parameter_count("wide_conv_encoder", 10, IMAGE, branch_width=8)
    with pytest.raises(ConfigError, match="wide_conv_encoder has no num_shared_layers"):
        enc.encoder_flops("wide_conv_encoder", 10, IMAGE, 4)
    with pytest.raises(ConfigError, match="split_conv_encoder has no dense_width"):
        enc.encoder_parameter_count("matched_split_conv_encoder", 10, dense_width=8)
    with pytest.raises(ConfigError, match="conv_encoder has no dense_width"):
        enc.encoder_parameter_count("conv_encoder", 10, dense_width=8)


@pytest.mark.parametrize(("binding", "expected_e5"), [
    ("wide_conv_encoder.dense_width = 7", (1024, 7)),
    ("matched_split_conv_encoder.branch_width = 5", (PAPER_K, 1024, 5)),
])
def test_control_widths_are_gin_bindable(binding: str, expected_e5, clean_gin) -> None:
    name = binding.split(".", 1)[0]
    gin.parse_config([f"encoder.num_latent = {PAPER_K}", f"encoder.encoder_fn = @{name}",
                      binding])
    with tf.Graph().as_default():
        dlib_arch.make_gaussian_encoder(tf.placeholder(tf.float32, [None, *IMAGE]))
        e5 = [shape for var, shape in _trainable_sizes().items() if var.endswith("e5/kernel")]
    assert e5 == [expected_e5]


# ---------------------------------------------------------------------------
# FactorVAE: the branches are trained by the VAE optimizer, not the discriminator's
# ---------------------------------------------------------------------------
class _RecordingOptimizer(tf.train.GradientDescentOptimizer):
    """Records the var_list dlib passes to minimize()."""

    def __init__(self) -> None:
        super().__init__(learning_rate=0.1)
        self.var_lists: list[list] = []

    def minimize(self, loss, global_step=None, var_list=None, **kwargs):
        self.var_lists.append(list(var_list))
        return super().minimize(loss, global_step=global_step, var_list=var_list, **kwargs)


def _factor_vae_var_lists(encoder_bindings: list[str], monkeypatch: pytest.MonkeyPatch
                          ) -> tuple[list, set, set]:
    """Builds FactorVAE's train op with an encoder; returns (trainable, VAE vars, discr. vars)."""
    gin.parse_config([
        "encoder.num_latent = 4",
        *encoder_bindings,
        "decoder.decoder_fn = @deconv_decoder",
        "discriminator.discriminator_fn = @fc_discriminator",
        "reconstruction_loss.loss_fn = @bernoulli_loss",
        "factor_vae.gamma = 10.",
    ])
    vae_opt, discr_opt = _RecordingOptimizer(), _RecordingOptimizer()
    monkeypatch.setattr(dlib_optimizers, "make_vae_optimizer", lambda: vae_opt)
    monkeypatch.setattr(dlib_optimizers, "make_discriminator_optimizer", lambda: discr_opt)
    with tf.Graph().as_default():
        tf.train.get_or_create_global_step()
        dlib_vae.FactorVAE().model_fn(tf.constant(_images(4)), None,
                                      tf.estimator.ModeKeys.TRAIN, {})
        trainable = tf.trainable_variables()
    assert len(vae_opt.var_lists) == 1 and len(discr_opt.var_lists) == 1
    return trainable, set(vae_opt.var_lists[0]), set(discr_opt.var_lists[0])


def test_factor_vae_optimizes_branches_with_the_vae(clean_gin,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    trainable, vae_vars, discr_vars = _factor_vae_var_lists(
        ["encoder.encoder_fn = @split_conv_encoder", "split_conv_encoder.num_shared_layers = 2",
         "split_conv_encoder.branch_width = 16"], monkeypatch)
    branch_vars = [v for v in trainable if v.op.name.startswith(f"encoder/{enc.BRANCH_SCOPE}/")]
    expected_leaves = {f"{layer}/{p}" for layer in ("e3", "e4", "e5", "means", "log_var")
                       for p in ("kernel", "bias")}
    assert {v.op.name.split("/", 2)[2] for v in branch_vars} == expected_leaves
    for var in branch_vars:
        assert var in vae_vars, var.op.name
        assert var not in discr_vars, var.op.name
    # Every encoder variable (shared e1, e2 included) is the VAE's, and only the VAE's.
    encoder_vars = [v for v in trainable if v.op.name.startswith("encoder/")]
    assert len(encoder_vars) == 4 + len(branch_vars)
    assert set(encoder_vars) <= vae_vars and not set(encoder_vars) & discr_vars


@pytest.mark.parametrize(("name", "binding", "count"), [
    ("matched_split_conv_encoder", "matched_split_conv_encoder.branch_width = 6",
     lambda: expected_split_conv_params(4, 6, 4)),
    ("wide_conv_encoder", "wide_conv_encoder.dense_width = 24",
     lambda: expected_wide_conv_params(4, 24)),
], ids=["matched", "wide"])
def test_factor_vae_optimizes_control_encoders_with_the_vae(
        name: str, binding: str, count, clean_gin, monkeypatch: pytest.MonkeyPatch) -> None:
    trainable, vae_vars, discr_vars = _factor_vae_var_lists(
        [f"encoder.encoder_fn = @{name}", binding], monkeypatch)
    encoder_vars = [v for v in trainable if v.op.name.startswith("encoder/")]
    assert _count({v.op.name: tuple(v.shape.as_list()) for v in encoder_vars}) == count()
    assert set(encoder_vars) <= vae_vars and not set(encoder_vars) & discr_vars
