"""Split Encoder (paper Sec 4.2, Fig 1) as drop-in dlib encoder functions.

The vanilla dlib encoders share every parameter between the latent factors up
to the last layer: only the mean / log-variance heads form a
"no-shared-parameter block". The Split Encoder splits the deeper layers so
that no parameter in them is shared between factors: each latent factor k
gets its own branch (hidden layers and its own scalar mean and log-variance
heads) on top of a shared block. This module provides, with dlib's encoder
contract ``fn(input_tensor, num_latent, is_training=True) -> (means, log_var)``
(so that ``encoder.encoder_fn = @split_conv_encoder`` works in gin):

* :func:`split_conv_encoder`: dlib's ``conv_encoder`` with the dense layer and
  heads split per factor; ``num_shared_layers`` (0..4) of dlib's conv layers
  stay shared, the rest become per-branch conv layers too.
* :func:`split_fc_encoder`: the same on dlib's ``fc_encoder``.
* Two capacity controls for :func:`split_conv_encoder` (the
  ``split_encoder_capacity_study_v1`` study): :func:`matched_split_conv_encoder`,
  the split encoder narrowed to dlib ``conv_encoder``'s parameter count, and
  :func:`wide_conv_encoder`, dlib's ``conv_encoder`` (nothing split) with its
  dense layer widened to the split encoder's parameter count.
* :func:`looped_split_conv_encoder`: a naive reference (a Python loop of
  per-factor ``tf.layers``), for the benchmark and the known-answer tests;
  not meant for training.
* :func:`encoder_parameter_count` / :func:`encoder_flops`: analytic sizes of
  the vanilla, split and control encoders, for the README and the benchmark.

The branches are batched over the factor axis: every per-branch variable has
the branch axis first (dense kernel ``[K, D_in, H]``, conv kernel
``[K, kh, kw, C_in, C_out]``), slice ``k`` being branch ``k``'s parameters,
and each layer is one op for all factors (a broadcast batched matmul, a
grouped convolution). Each slice is initialised exactly like the standalone
``tf.layers`` layer it replaces (Glorot-uniform with that layer's fans, zero
biases), so only the wiring differs from K separate layers.

Grouped convolution on CPU: TF 2.15 runs ``tf.nn.conv2d`` with
``filters.shape[2] * K == input channels`` (a grouped convolution) forward on
any CPU, but its *gradient* only with oneDNN; without oneDNN backprop fails
with "Gradients for grouped convolutions are not supported on CPU", and
grappler's conv + bias + relu fusion refuses the forward pass too ("Fused
conv implementation does not support grouped convolutions"). TF 2.15 does
not turn oneDNN on by default on every x86-64 CPU: it was off on an AVX2-only
AMD EPYC machine of this project (no AVX-512) until ``TF_ENABLE_ONEDNN_OPTS=1``
was set; ``=0`` and builds without it turn it off anywhere. We use
the single grouped op when oneDNN is on and otherwise fall back to one
``conv2d`` per branch on channel slices of the same batched variables. On a
2-core CPU (batch 64, K=10, forward + backward of the whole encoder) the
grouped op was as fast as or faster than the sliced fallback for every
num_shared_layers (up to ~1.9x for 2); im2col + batched matmul and
depthwise-conv formulations were 4-18x slower on layer e2 and use far more
memory. The default configuration (``num_shared_layers=4``) has no
per-branch conv layer and is unaffected.

All variables are created in the caller's variable scope, which dlib's
``make_gaussian_encoder`` sets to ``encoder``: the shared layers keep dlib's
names (``encoder/e1`` ...), the per-branch ones live under
``encoder/branches/<layer>`` (FactorVAE selects the VAE's variables by the
substring "encoder"). :func:`wide_conv_encoder` has no branches: all its
layers, heads included, are dlib's ``tf.layers`` with dlib's names.

TensorFlow is imported inside the functions, so importing this module (and
``splitenc_plugin``) does not import it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from splitenc_plugin._gin import (
    bound_value,
    check_int_binding,
    configurable,
    is_integer,
    reference_name,
    reference_scope,
)
from splitenc_plugin.errors import ConfigError

if TYPE_CHECKING:  # annotations only: importing this module imports no TensorFlow
    import tensorflow as tf

__all__ = [
    "ENCODER_KINDS",
    "encoder_flops",
    "encoder_parameter_count",
    "looped_split_conv_encoder",
    "matched_split_conv_encoder",
    "preflight",
    "split_conv_encoder",
    "split_fc_encoder",
    "wide_conv_encoder",
]

# Scope of the per-branch (batched) variables, below the caller's scope.
BRANCH_SCOPE = "branches"

#: Defaults of :func:`split_conv_encoder` (our reading of Sec 4.2 / Fig 1,
#: whose text does not say where the split starts: dlib's 4 convs shared, a
#: 256-unit e5 per latent; README, Split encoder) and :func:`split_fc_encoder` (e1 shared,
#: a 1200-unit e2 per latent: dlib's widths).
SPLIT_CONV_SHARED_LAYERS, SPLIT_CONV_BRANCH_WIDTH = 4, 256
SPLIT_FC_SHARED_LAYERS, SPLIT_FC_BRANCH_WIDTH = 1, 1200
#: Default branch width of :func:`matched_split_conv_encoder`: with 10 latents
#: on 64x64x1 images, the largest width at which the default split (4 shared
#: conv layers) has no more parameters than dlib's ``conv_encoder``.
MATCHED_BRANCH_WIDTH = 26
#: Default dense width of :func:`wide_conv_encoder`: with 10 latents on
#: 64x64x1 images, the e5 width whose parameter count is closest to the
#: default :func:`split_conv_encoder`'s.
WIDE_DENSE_WIDTH = 2516


# ---------------------------------------------------------------------------
# Architecture descriptions (pure Python: used by the TF builders and by the
# analytic parameter / FLOP counts, so the two cannot drift apart).
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Conv:
    """A ReLU conv layer with "same" padding, as in dlib's conv_encoder."""

    name: str
    filters: int
    kernel: int
    stride: int


@dataclasses.dataclass(frozen=True)
class _Dense:
    """A ReLU dense layer (the input is flattened first if it is an image)."""

    name: str
    units: int


_Layer = _Conv | _Dense

# dlib's conv_encoder (architectures.py; beta-VAE paper Table 1, row 3).
_DLIB_CONV_LAYERS: tuple[_Layer, ...] = (
    _Conv("e1", 32, 4, 2),
    _Conv("e2", 32, 4, 2),
    _Conv("e3", 64, 2, 2),
    _Conv("e4", 64, 2, 2),
    _Dense("e5", 256),
)
# dlib's fc_encoder (beta-VAE paper Table 1, row 1).
_DLIB_FC_LAYERS: tuple[_Layer, ...] = (_Dense("e1", 1200), _Dense("e2", 1200))


@dataclasses.dataclass(frozen=True)
class _Architecture:
    """One encoder kind.

    Attributes:
      layers: The hidden layers, in order.
      split: False for vanilla (dlib-style) encoders (everything shared, heads
        with num_latent outputs); True for split encoders (layers from index
        ``num_shared_layers`` on are per-branch, heads are per-branch scalars).
      max_shared: Largest valid num_shared_layers (split kinds only).
      default_shared: Default num_shared_layers (split kinds only).
      default_width: Default width of the configurable dense layers: the
        per-branch ones (``branch_width``, split kinds) or, for a vanilla kind
        with ``dense_width``, the shared ones; 0 = dlib's fixed widths.
    """

    layers: tuple[_Layer, ...]
    split: bool
    max_shared: int = 0
    default_shared: int = 0
    default_width: int = 0

    @property
    def width_arg(self) -> str | None:
        """The argument that sets the configurable width, or None (dlib's widths)."""
        if self.split:
            return "branch_width"
        return "dense_width" if self.default_width else None


_SPLIT_CONV = _Architecture(
    # The dense layer e5 is always per-branch: at most the 4 convs are shared.
    _DLIB_CONV_LAYERS, split=True, max_shared=4, default_shared=SPLIT_CONV_SHARED_LAYERS,
    default_width=SPLIT_CONV_BRANCH_WIDTH)

_ARCHITECTURES: dict[str, _Architecture] = {
    "conv_encoder": _Architecture(_DLIB_CONV_LAYERS, split=False),
    "split_conv_encoder": _SPLIT_CONV,
    "matched_split_conv_encoder": dataclasses.replace(_SPLIT_CONV,
                                                      default_width=MATCHED_BRANCH_WIDTH),
    # dlib's conv_encoder, dense layer e5 widened; nothing split.
    "wide_conv_encoder": _Architecture(_DLIB_CONV_LAYERS, split=False,
                                       default_width=WIDE_DENSE_WIDTH),
    "fc_encoder": _Architecture(_DLIB_FC_LAYERS, split=False),
    # 2 = both hidden layers shared, only the heads are split.
    "split_fc_encoder": _Architecture(
        _DLIB_FC_LAYERS, split=True, max_shared=2, default_shared=SPLIT_FC_SHARED_LAYERS,
        default_width=SPLIT_FC_BRANCH_WIDTH),
}

#: Encoder kinds accepted by :func:`encoder_parameter_count` / :func:`encoder_flops`.
ENCODER_KINDS: tuple[str, ...] = tuple(_ARCHITECTURES)


@dataclasses.dataclass(frozen=True)
class _PlannedLayer:
    layer: _Layer
    per_branch: bool


def _plan(arch: _Architecture, num_shared_layers: int, width: int) -> list[_PlannedLayer]:
    """The hidden layers with their sharing and widths.

    Per-branch dense layers get ``width`` units (the branch width); so do the
    shared dense layers of a vanilla kind with a configurable width
    (``dense_width``). Conv layers always keep dlib's filter counts.
    """
    plan = []
    for index, layer in enumerate(arch.layers):
        per_branch = arch.split and index >= num_shared_layers
        if isinstance(layer, _Dense) and (per_branch or (not arch.split and arch.width_arg)):
            # The paper's larger no-shared block (split kinds), or the
            # widened shared block (wide_conv_encoder).
            layer = dataclasses.replace(layer, units=width)
        plan.append(_PlannedLayer(layer, per_branch))
    return plan


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------
def _resolve(kind: str, num_latent: Any, num_shared_layers: Any, branch_width: Any,
             gin_name: str | None = None,
             dense_width: Any = None) -> tuple[_Architecture, int, int, int]:
    """Validates the arguments of ``kind``; returns (arch, K, shared, width) with defaults filled.

    ``gin_name`` (default: ``kind``) is the configurable named in error messages.
    ``width`` is the branch width (split kinds), the dense width (a vanilla
    kind with ``dense_width``) or 0 (dlib's fixed widths).
    """
    gin_name = gin_name or kind
    arch = _ARCHITECTURES.get(kind)
    if arch is None:
        raise ConfigError(f"unknown encoder kind {kind!r}; use one of {', '.join(ENCODER_KINDS)}.")
    num_latent = check_int_binding(num_latent, "encoder.num_latent", 1, None, "10")
    given = {"num_shared_layers": num_shared_layers, "branch_width": branch_width,
             "dense_width": dense_width}
    accepted = ("num_shared_layers", "branch_width") if arch.split else (arch.width_arg,)
    for name, value in given.items():
        if value is None or name in accepted:
            continue
        if arch.split:
            why = "its per-factor dense width is branch_width"
        elif arch.width_arg:
            why = f"it shares all layers; its dense width is {arch.width_arg}"
        else:
            why = "dlib's vanilla encoder shares all layers"
        alternative = f"split_{kind}" if f"split_{kind}" in _ARCHITECTURES else "split_conv_encoder"
        if name == "dense_width":
            alternative = "wide_conv_encoder"
        raise ConfigError(f"{kind} has no {name} ({why}), got {name}={value!r}; pass None, "
                          f"or use {alternative}.")
    shared = len(arch.layers)
    if arch.split:
        shared = arch.default_shared if num_shared_layers is None else num_shared_layers
        shared = check_int_binding(shared, f"{gin_name}.num_shared_layers", 0, arch.max_shared,
                                   str(arch.default_shared))
    width = 0
    if arch.width_arg:
        width = given[arch.width_arg]
        width = check_int_binding(arch.default_width if width is None else width,
                                  f"{gin_name}.{arch.width_arg}", 1, None,
                                  str(arch.default_width))
    return arch, num_latent, shared, width


def _image_shape(input_tensor: Any) -> tuple[int, int, int]:
    """Static (height, width, channels) of a [batch, H, W, C] input tensor."""
    dims = input_tensor.shape.as_list() if input_tensor.shape.rank is not None else None
    if dims is None or len(dims) != 4 or any(d is None for d in dims[1:]):
        raise ValueError(
            f"the encoder input must be a [batch, height, width, channels] tensor with static "
            f"height, width and channels (dlib's images), got shape {input_tensor.shape}.")
    return dims[1], dims[2], dims[3]


# ---------------------------------------------------------------------------
# Analytic parameter and FLOP counts
# ---------------------------------------------------------------------------
def _costs(kind: str, num_latent: int, input_shape: Sequence[int],
           num_shared_layers: int | None, branch_width: int | None,
           dense_width: int | None) -> tuple[int, int]:
    """(trainable parameters, multiply-adds per example) of an encoder."""
    arch, k, shared, width = _resolve(kind, num_latent, num_shared_layers, branch_width,
                                      dense_width=dense_width)
    if len(input_shape) != 3 or not all(is_integer(d) and d >= 1 for d in input_shape):
        raise ConfigError(f"input_shape must be (height, width, channels), got {input_shape!r}.")
    height, width_px, channels = (int(d) for d in input_shape)
    features = height * width_px * channels  # size of the current activation
    params = macs = 0
    for planned in _plan(arch, shared, width):
        copies = k if planned.per_branch else 1
        layer = planned.layer
        if isinstance(layer, _Conv):
            # "same" padding: output side ceil(side / stride); every output
            # position costs the full kernel (TF also multiplies the padding).
            height, width_px = -(-height // layer.stride), -(-width_px // layer.stride)
            kernel = layer.kernel * layer.kernel * channels * layer.filters
            params += copies * (kernel + layer.filters)
            macs += copies * height * width_px * kernel
            channels = layer.filters
            features = height * width_px * channels
        else:
            params += copies * (features * layer.units + layer.units)
            macs += copies * features * layer.units
            features = layer.units
    # Mean and log-variance heads: vanilla = one dense of K units each;
    # split = K scalar heads each. Same sizes, different wiring.
    params += 2 * (features * k + k)
    macs += 2 * features * k
    return params, macs


def encoder_parameter_count(kind: str, num_latent: int,
                            input_shape: Sequence[int] = (64, 64, 1),
                            num_shared_layers: int | None = None,
                            branch_width: int | None = None,
                            dense_width: int | None = None) -> int:
    """Number of trainable parameters of an encoder, in closed form.

    Args:
      kind: One of :data:`ENCODER_KINDS`: "conv_encoder", "fc_encoder" (dlib's
        vanilla encoders), "split_conv_encoder", "split_fc_encoder",
        "matched_split_conv_encoder" (split kinds), "wide_conv_encoder".
      num_latent: Number of latent factors K.
      input_shape: (height, width, channels) of the images.
      num_shared_layers: Split kinds only; None = the encoder's default.
      branch_width: Split kinds only; None = the encoder's default.
      dense_width: "wide_conv_encoder" only; None = its default.

    Returns:
      Kernel plus bias sizes summed over all layers; equals the trainable
      variables the encoder function creates.

    Raises:
      ConfigError: Unknown kind, invalid values, or an argument the kind does
        not have (e.g. split-only arguments for a vanilla kind).
    """
    return _costs(kind, num_latent, input_shape, num_shared_layers, branch_width,
                  dense_width)[0]


def encoder_flops(kind: str, num_latent: int,
                  input_shape: Sequence[int] = (64, 64, 1),
                  num_shared_layers: int | None = None,
                  branch_width: int | None = None,
                  dense_width: int | None = None) -> int:
    """Multiply-adds per example of an encoder's forward pass, in closed form.

    Counts the multiply-adds of the conv and dense kernels (a conv output
    position costs kh * kw * C_in * C_out, padding included, as TF computes
    it); biases, activations and reshapes are not counted.

    Args:
      kind: See :func:`encoder_parameter_count`.
      num_latent: Number of latent factors K.
      input_shape: (height, width, channels) of the images.
      num_shared_layers: Split kinds only; None = the encoder's default.
      branch_width: Split kinds only; None = the encoder's default.
      dense_width: "wide_conv_encoder" only; None = its default.

    Returns:
      Multiply-adds for one example.

    Raises:
      ConfigError: As :func:`encoder_parameter_count`.
    """
    return _costs(kind, num_latent, input_shape, num_shared_layers, branch_width,
                  dense_width)[1]


# ---------------------------------------------------------------------------
# Graph construction
# ---------------------------------------------------------------------------
def _grouped_conv_supported() -> bool:
    """Whether this TF can backprop through a grouped conv2d on CPU (needs oneDNN)."""
    from splitenc_plugin.compat.runtime import onednn_enabled

    # Unknown: the fallback, which is correct everywhere, only slower.
    return bool(onednn_enabled())


def _glorot_uniform(fan_in: int, fan_out: int):
    """The initializer tf.layers uses by default, with one standalone layer's fans.

    TF's glorot_uniform on a batched [K, ...] shape would treat K as part of the
    receptive field and shrink the range; each branch must be initialised as
    the layer it replaces.
    """
    import tensorflow.compat.v1 as tf

    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return tf.random_uniform_initializer(-limit, limit)


def _branch_variables(name: str, kernel_shape: Sequence[int], fan_in: int, fan_out: int,
                      bias_shape: Sequence[int], dtype: Any) -> tuple[Any, Any]:
    """Creates ``<scope>/branches/<name>/{kernel,bias}``, branch axis first."""
    import tensorflow.compat.v1 as tf

    with tf.variable_scope(f"{BRANCH_SCOPE}/{name}"):
        kernel = tf.get_variable("kernel", shape=list(kernel_shape), dtype=dtype,
                                 initializer=_glorot_uniform(fan_in, fan_out))
        bias = tf.get_variable("bias", shape=list(bias_shape), dtype=dtype,
                               initializer=tf.zeros_initializer())
    return kernel, bias


def _stacked_filters(kernel):
    """[K, kh, kw, C_in, C_out] -> [kh, kw, C_in, K * C_out], branch-major output channels."""
    import tensorflow.compat.v1 as tf

    k, kh, kw, c_in, c_out = kernel.shape.as_list()
    return tf.reshape(tf.transpose(kernel, [1, 2, 3, 0, 4]), [kh, kw, c_in, k * c_out])


def _grouped_conv2d(images, kernel, stride: int):
    """Per-branch convolution of branch-major channels.

    Args:
      images: [B, H, W, K * C_in], channels k * C_in .. (k + 1) * C_in - 1
        belonging to branch k.
      kernel: [K, kh, kw, C_in, C_out].
      stride: Spatial stride; padding is "same".

    Returns:
      [B, ceil(H / stride), ceil(W / stride), K * C_out], branch-major.
    """
    import tensorflow.compat.v1 as tf

    if _grouped_conv_supported():
        # One grouped op: TF infers K groups from C_in * K input channels.
        return tf.nn.conv2d(images, _stacked_filters(kernel), strides=stride, padding="SAME")
    num_branches = kernel.shape.as_list()[0]
    slices = tf.split(images, num_branches, axis=3)
    return tf.concat([tf.nn.conv2d(part, kernel[j], strides=stride, padding="SAME")
                      for j, part in enumerate(slices)], axis=3)


def _to_branch_vectors(images, num_branches: int):
    """[B, H, W, K * C] branch-major -> [K, B, H * W * C], each branch flattened like tf.layers.flatten."""
    import tensorflow.compat.v1 as tf

    _, height, width, channels = images.shape.as_list()
    per_branch = channels // num_branches
    x = tf.reshape(images, [-1, height * width, num_branches, per_branch])
    x = tf.transpose(x, [2, 0, 1, 3])
    return tf.reshape(x, [num_branches, -1, height * width * per_branch])


def _build_batched(arch: _Architecture, input_tensor, num_latent: int, num_shared_layers: int,
                   branch_width: int):
    """Shared dlib layers, then K branches as batched ops (see the module docstring).

    A vanilla (unsplit) ``arch`` builds only the shared dlib layers, then
    dlib's two dense heads of K units (``means``, ``log_var``).
    """
    import tensorflow.compat.v1 as tf

    k = num_latent
    dtype = input_tensor.dtype.base_dtype
    x = input_tensor
    # Form of x: "image" [B, H, W, C] or "vector" [B, D] (shared), or
    # "branch_image" [B, H, W, K * C] / "branch_vector" [K, B, D] (per branch).
    form = "image"
    for planned in _plan(arch, num_shared_layers, branch_width):
        layer = planned.layer
        if not planned.per_branch:
            if isinstance(layer, _Conv):
                x = tf.layers.conv2d(x, filters=layer.filters, kernel_size=layer.kernel,
                                     strides=layer.stride, activation=tf.nn.relu,
                                     padding="same", name=layer.name)
            else:
                if form == "image":
                    x, form = tf.layers.flatten(x), "vector"
                x = tf.layers.dense(x, layer.units, activation=tf.nn.relu, name=layer.name)
            continue
        if isinstance(layer, _Conv):
            c_in = x.shape.as_list()[-1] // (k if form == "branch_image" else 1)
            area = layer.kernel * layer.kernel
            kernel, bias = _branch_variables(
                layer.name, [k, layer.kernel, layer.kernel, c_in, layer.filters],
                area * c_in, area * layer.filters, [k, layer.filters], dtype)
            if form == "image":
                # Shared input: K branches are just K * C_out filters on it.
                x = tf.nn.conv2d(x, _stacked_filters(kernel), strides=layer.stride,
                                 padding="SAME")
            else:
                x = _grouped_conv2d(x, kernel, layer.stride)
            # bias_add (not "+"): oneDNN fuses it with the conv and its gradient
            # is one BiasAddGrad; with "+" the step at shared=1 was up to ~2x slower.
            x = tf.nn.relu(tf.nn.bias_add(x, tf.reshape(bias, [k * layer.filters])))
            form = "branch_image"
        else:
            if form == "image":
                x, form = tf.layers.flatten(x), "vector"
            elif form == "branch_image":
                x, form = _to_branch_vectors(x, k), "branch_vector"
            d_in = x.shape.as_list()[-1]
            kernel, bias = _branch_variables(layer.name, [k, d_in, layer.units], d_in,
                                             layer.units, [k, layer.units], dtype)
            # [1 or K, B, D] @ [K, D, H] -> [K, B, H]: one batched matmul; the
            # broadcast avoids tiling a shared input K times.
            inputs = x[tf.newaxis] if form == "vector" else x
            x = tf.nn.relu(tf.matmul(inputs, kernel) + bias[:, tf.newaxis, :])
            form = "branch_vector"

    if form == "image":
        x, form = tf.layers.flatten(x), "vector"
    elif form == "branch_image":
        x, form = _to_branch_vectors(x, k), "branch_vector"
    if not arch.split:
        # dlib's heads: one dense layer of K units each, its names and initialiser.
        return (tf.layers.dense(x, k, activation=None, name="means"),
                tf.layers.dense(x, k, activation=None, name="log_var"))
    d_in = x.shape.as_list()[-1]
    outputs = []
    for name in ("means", "log_var"):
        kernel, bias = _branch_variables(name, [k, d_in], d_in, 1, [k], dtype)
        if form == "vector":
            head = tf.matmul(x, kernel, transpose_b=True)  # [B, D] x [K, D]^T -> [B, K]
        else:
            # Row k of x only meets row k of the kernel: [K, B, D] @ [K, D, 1].
            head = tf.transpose(tf.squeeze(tf.matmul(x, kernel[:, :, tf.newaxis]), 2))
        outputs.append(head + bias)
    return outputs[0], outputs[1]


def _build_looped(arch: _Architecture, input_tensor, num_latent: int, num_shared_layers: int,
                  branch_width: int):
    """Shared dlib layers, then a Python loop of K per-factor tf.layers branches."""
    import tensorflow.compat.v1 as tf

    def apply(x, layer: _Layer):
        if isinstance(layer, _Conv):
            return tf.layers.conv2d(x, filters=layer.filters, kernel_size=layer.kernel,
                                    strides=layer.stride, activation=tf.nn.relu,
                                    padding="same", name=layer.name)
        if x.shape.rank != 2:
            x = tf.layers.flatten(x)
        return tf.layers.dense(x, layer.units, activation=tf.nn.relu, name=layer.name)

    plan = _plan(arch, num_shared_layers, branch_width)
    shared = input_tensor
    for planned in plan:
        if not planned.per_branch:
            shared = apply(shared, planned.layer)
    means, log_vars = [], []
    for j in range(num_latent):
        with tf.variable_scope(f"branch_{j}"):
            x = shared
            for planned in plan:
                if planned.per_branch:
                    x = apply(x, planned.layer)
            if x.shape.rank != 2:
                x = tf.layers.flatten(x)
            means.append(tf.layers.dense(x, 1, activation=None, name="means"))
            log_vars.append(tf.layers.dense(x, 1, activation=None, name="log_var"))
    return tf.concat(means, axis=1), tf.concat(log_vars, axis=1)


# Each encoder configurable of this module -> the architecture it builds
# (a capacity control is its own kind; the looped reference builds the split one).
CONFIGURABLE_KINDS = {
    "split_conv_encoder": "split_conv_encoder",
    "matched_split_conv_encoder": "matched_split_conv_encoder",
    "wide_conv_encoder": "wide_conv_encoder",
    "looped_split_conv_encoder": "split_conv_encoder",
    "split_fc_encoder": "split_fc_encoder",
}
_WIDTH_ARGS = ("num_shared_layers", "branch_width", "dense_width")


def _encode(gin_name: str, builder, input_tensor, num_latent, num_shared_layers=None,
            branch_width=None, dense_width=None):
    """Validates everything, then builds configurable ``gin_name``'s kind with ``builder``."""
    arch, k, shared, width = _resolve(CONFIGURABLE_KINDS[gin_name], num_latent,
                                      num_shared_layers, branch_width, gin_name, dense_width)
    _image_shape(input_tensor)
    return builder(arch, input_tensor, k, shared, width)


def preflight() -> None:
    """Validates the selected encoder's bindings without building a graph.

    Called by the compat layer before dlib loads its dataset (as
    :func:`splitenc_plugin.model.noise.preflight`), so that e.g.
    ``split_conv_encoder.num_shared_layers = 7`` fails in seconds, not after
    the data is loaded. Only the encoder ``encoder.encoder_fn`` selects is
    checked, with its bound values, as the graph build checks them: a binding
    of an encoder the model does not use is never read (a study may bind it
    for every model). Macros are followed. Nothing is checked while
    ``encoder.num_latent`` is unbound (or bound only in a scope) or the
    encoder is selected in a scope (``@s/split_conv_encoder``, whose call reads
    ``s/``'s bindings first): the graph build then decides.

    Raises:
      ConfigError: naming the binding and a valid value.
    """
    reference = bound_value("encoder.encoder_fn")
    selected = reference_name(reference)
    num_latent = bound_value("encoder.num_latent")
    if selected not in CONFIGURABLE_KINDS or num_latent is None or reference_scope(reference):
        return
    bound = {name: bound_value(f"{selected}.{name}") for name in _WIDTH_ARGS}
    _resolve(CONFIGURABLE_KINDS[selected], num_latent, gin_name=selected, **bound)


@configurable("split_conv_encoder", allowlist=["num_shared_layers", "branch_width"])
def split_conv_encoder(input_tensor: tf.Tensor, num_latent: int, is_training: bool = True,
                       num_shared_layers: int = SPLIT_CONV_SHARED_LAYERS,
                       branch_width: int = SPLIT_CONV_BRANCH_WIDTH) -> tuple[tf.Tensor, tf.Tensor]:
    """Split Encoder on dlib's conv_encoder (paper Sec 4.2, Fig 1).

    The first ``num_shared_layers`` of dlib's conv layers (e1..e4: 32, 32, 64,
    64 filters, kernels 4, 4, 2, 2, stride 2, ReLU, "same" padding, dlib's
    names) form the shared-parameter block. Then each latent factor k has its
    own branch, the no-shared-parameter block: the remaining conv layers (with
    dlib's filter counts), a ReLU dense layer of ``branch_width`` units (dlib's
    e5 has 256, shared) and a scalar mean and a scalar log-variance head.
    All branches are computed together by batched ops.

    Args:
      input_tensor: Images [B, H, W, C] (dlib: [B, 64, 64, C]), static H, W, C.
      num_latent: Number of latent factors K (= number of branches).
      is_training: Unused (no batch norm), as in dlib's conv_encoder.
      num_shared_layers: How many of the 4 conv layers stay shared, 0..4;
        fewer = the split starts closer to the input; 0 = the image goes
        straight into per-branch conv stacks.
      branch_width: Units of each branch's dense layer.

    Returns:
      means: [B, K] latent means; column k depends only on shared and branch-k
        parameters.
      log_var: [B, K] latent log variances; likewise.

    Raises:
      ConfigError: num_latent < 1, num_shared_layers not in 0..4 or
        branch_width < 1 (checked before any op is built).
    """
    del is_training
    return _encode("split_conv_encoder", _build_batched, input_tensor, num_latent,
                   num_shared_layers, branch_width)


@configurable("matched_split_conv_encoder", allowlist=["num_shared_layers", "branch_width"])
def matched_split_conv_encoder(input_tensor: tf.Tensor, num_latent: int,
                               is_training: bool = True,
                               num_shared_layers: int = SPLIT_CONV_SHARED_LAYERS,
                               branch_width: int = MATCHED_BRANCH_WIDTH
                               ) -> tuple[tf.Tensor, tf.Tensor]:
    """Capacity control: the Split Encoder at dlib conv_encoder's parameter count.

    Exactly :func:`split_conv_encoder` (same layers, variable names and
    initialisers), registered under its own gin name so that a study's
    ``encoder`` axis and the results tell it apart, with a narrower default
    branch: :data:`MATCHED_BRANCH_WIDTH` units, the largest branch width at
    which :func:`encoder_parameter_count` of the default split (10 latents,
    64x64x1 images) does not exceed dlib ``conv_encoder``'s. It separates the
    effect of splitting from the effect of the split encoder's larger
    parameter count. Other ``num_latent`` or image shapes change both counts;
    pick the width with :func:`encoder_parameter_count` then.

    Args:
      input_tensor: Images [B, H, W, C] (dlib: [B, 64, 64, C]), static H, W, C.
      num_latent: Number of latent factors K (= number of branches).
      is_training: Unused (no batch norm), as in dlib's conv_encoder.
      num_shared_layers: As in :func:`split_conv_encoder` (0..4).
      branch_width: Units of each branch's dense layer.

    Returns:
      (means, log_var), each [B, K], as :func:`split_conv_encoder`.

    Raises:
      ConfigError: As :func:`split_conv_encoder`, before any op is built.
    """
    del is_training
    return _encode("matched_split_conv_encoder", _build_batched, input_tensor, num_latent,
                   num_shared_layers, branch_width)


@configurable("wide_conv_encoder", allowlist=["dense_width"])
def wide_conv_encoder(input_tensor: tf.Tensor, num_latent: int, is_training: bool = True,
                      dense_width: int = WIDE_DENSE_WIDTH) -> tuple[tf.Tensor, tf.Tensor]:
    """Capacity control: dlib's conv_encoder, unsplit, at the Split Encoder's parameter count.

    dlib's conv_encoder layer for layer (conv e1..e4: 32, 32, 64, 64 filters,
    kernels 4, 4, 2, 2, stride 2, ReLU, "same" padding; flatten; dense e5,
    ReLU; dense heads ``means`` and ``log_var`` of K units; dlib's names and
    ``tf.layers`` initialisers), with e5 widened from 256 to ``dense_width``
    units. Every parameter up to the heads is shared by all latent factors:
    the model the split encoder's extra capacity would be without the split.
    The default, :data:`WIDE_DENSE_WIDTH`, is the width whose
    :func:`encoder_parameter_count` (10 latents, 64x64x1 images) is closest
    to the default :func:`split_conv_encoder`'s. ``dense_width = 256`` is
    dlib's conv_encoder.

    Args:
      input_tensor: Images [B, H, W, C] (dlib: [B, 64, 64, C]), static H, W, C.
      num_latent: Number of latent factors K.
      is_training: Unused (no batch norm), as in dlib's conv_encoder.
      dense_width: Units of the shared dense layer e5.

    Returns:
      means: [B, K] latent means; every column depends on every e5 unit.
      log_var: [B, K] latent log variances; likewise.

    Raises:
      ConfigError: num_latent < 1 or dense_width < 1 (checked before any op
        is built).
    """
    del is_training
    return _encode("wide_conv_encoder", _build_batched, input_tensor, num_latent,
                   dense_width=dense_width)


@configurable("looped_split_conv_encoder", allowlist=["num_shared_layers", "branch_width"])
def looped_split_conv_encoder(input_tensor: tf.Tensor, num_latent: int, is_training: bool = True,
                              num_shared_layers: int = SPLIT_CONV_SHARED_LAYERS,
                              branch_width: int = SPLIT_CONV_BRANCH_WIDTH
                              ) -> tuple[tf.Tensor, tf.Tensor]:
    """Reference / benchmark baseline of :func:`split_conv_encoder`; not for training.

    The same architecture (paper Sec 4.2), written naively: the shared dlib
    layers, then a Python loop creating K separate ``tf.layers`` branches
    (``branch_<k>/e<i>``, ``branch_<k>/e5``, ``branch_<k>/means``,
    ``branch_<k>/log_var``). Same total variable sizes and, given the same
    weights, the same outputs as the batched encoder; it builds K times as
    many ops, which is what the benchmark measures.

    Args:
      input_tensor: Images [B, H, W, C], static H, W, C.
      num_latent: Number of latent factors K.
      is_training: Unused.
      num_shared_layers: As in :func:`split_conv_encoder`.
      branch_width: As in :func:`split_conv_encoder`.

    Returns:
      (means, log_var), each [B, K].

    Raises:
      ConfigError: As :func:`split_conv_encoder`.
    """
    del is_training
    return _encode("looped_split_conv_encoder", _build_looped, input_tensor, num_latent,
                   num_shared_layers, branch_width)


@configurable("split_fc_encoder", allowlist=["num_shared_layers", "branch_width"])
def split_fc_encoder(input_tensor: tf.Tensor, num_latent: int, is_training: bool = True,
                     num_shared_layers: int = SPLIT_FC_SHARED_LAYERS,
                     branch_width: int = SPLIT_FC_BRANCH_WIDTH) -> tuple[tf.Tensor, tf.Tensor]:
    """Split Encoder on dlib's fc_encoder (paper Sec 4.2, Fig 1).

    dlib's fc_encoder is flatten -> dense 1200 ReLU (e1) -> dense 1200 ReLU
    (e2) -> heads. The first ``num_shared_layers`` hidden layers stay shared
    (dlib's names and sizes); each latent factor k then has its own branch of
    the remaining hidden layers, ``branch_width`` units each, and its own
    scalar mean and log-variance heads, computed by batched ops.

    Args:
      input_tensor: Images [B, H, W, C], static H, W, C.
      num_latent: Number of latent factors K.
      is_training: Unused, as in dlib's fc_encoder.
      num_shared_layers: 0..2; 1 (default) = e1 shared, e2 split; 2 = only
        the heads are split (branch_width is then unused).
      branch_width: Units of each per-branch hidden layer.

    Returns:
      means: [B, K] latent means.
      log_var: [B, K] latent log variances.

    Raises:
      ConfigError: num_latent < 1, num_shared_layers not in 0..2 or
        branch_width < 1.
    """
    del is_training
    return _encode("split_fc_encoder", _build_batched, input_tensor, num_latent,
                   num_shared_layers, branch_width)
