"""The grids of the paper's studies (Sec 5), a capacity control, and their job specs.

This module is pure Python (no TensorFlow, no dlib), so the runner and the
aggregator can validate input and plan jobs in well under a second. The dlib
``Study`` objects that ``dlib_reproduce`` uses wrap these grids
(:mod:`splitenc_plugin.studies.dlib_studies`).

=============================== ============================================
study                           grid (model_num enumerates it, last axis
                                fastest)
=============================== ============================================
correlated_noise_study_v1       Sec 5.1 / Fig 2: model {vae, factor_vae
                                (gamma=35)} x sigma {0, 0.9} x seed 0..9, on
                                dsprites_full (40 models)
split_encoder_study_v1          Sec 5.2 / Figs 3-8: dataset {dsprites_full,
                                smallnorb, cars3d} x model {factor_vae
                                (gamma=35), beta_tc_vae (beta=6)} x encoder
                                {conv_encoder, split_conv_encoder} x seed
                                0..9 (120 models)
split_encoder_capacity_study_v1 not in the paper, a capacity control: as
                                split_encoder_study_v1 with encoder
                                {conv_encoder, split_conv_encoder,
                                matched_split_conv_encoder,
                                wide_conv_encoder} (240 models)
=============================== ============================================

Each model's gin config is one of the plugin's full configs in ``gin/``
(:data:`MODEL_CONFIGS`); the study adds ``dataset.name`` and
``model.random_seed`` bindings. sigma = 0 is the factorized-noise baseline
config (dlib's own noise, Eq 11); sigma = 0.9 the ``corrnoise_*`` config
(Eq 13).
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from splitenc_plugin.errors import SplitencUserError

__all__ = [
    "DEFAULT_TRAINING_STEPS",
    "DLIB_STUDY_BINDINGS",
    "EVAL_CONFIGS",
    "GRIDS",
    "METRIC_REPRESENTATIONS",
    "METRIC_SEED_GENERATIONS",
    "MODEL_CONFIGS",
    "PAPER_SIGMA",
    "POSTPROCESS_CONFIGS",
    "TEST_DATASET",
    "JobSpec",
    "ModelSpec",
    "StudyGrid",
    "UnknownStudyError",
    "axis_values",
    "config_file",
    "config_name",
    "config_ref",
    "dlib_config_path",
    "evaluation_pairs",
    "get_grid",
    "make_job_spec",
    "restrict_metrics",
]

# model.training_steps of every config in gin/ (dlib's unsupervised_study_v1).
DEFAULT_TRAINING_STEPS = 300000

# The paper's correlation weight of the correlated noise (Sec 5.1, Eq 13). The
# shipped gin/fragments/correlated_noise.gin (which the corrnoise_* configs
# include) writes the same literal, as a gin file cannot import it;
# tests/test_noise.py checks that the two agree.
PAPER_SIGMA = 0.9

# (model, encoder, sigma) -> the full gin config in gin/ that trains it.
MODEL_CONFIGS: dict[tuple[str, str, float], str] = {
    ("vae", "conv_encoder", 0.0): "vae.gin",
    ("vae", "conv_encoder", PAPER_SIGMA): "corrnoise_vae.gin",
    ("vae", "split_conv_encoder", 0.0): "split_vae.gin",
    ("factor_vae", "conv_encoder", 0.0): "factorvae.gin",
    ("factor_vae", "conv_encoder", PAPER_SIGMA): "corrnoise_factorvae.gin",
    ("factor_vae", "split_conv_encoder", 0.0): "split_factorvae.gin",
    ("beta_tc_vae", "conv_encoder", 0.0): "betatcvae.gin",
    ("beta_tc_vae", "split_conv_encoder", 0.0): "split_betatcvae.gin",
    # Capacity controls of the split encoder (split_encoder_capacity_study_v1).
    ("factor_vae", "matched_split_conv_encoder", 0.0): "matched_split_factorvae.gin",
    ("beta_tc_vae", "matched_split_conv_encoder", 0.0): "matched_split_betatcvae.gin",
    ("factor_vae", "wide_conv_encoder", 0.0): "wide_factorvae.gin",
    ("beta_tc_vae", "wide_conv_encoder", 0.0): "wide_betatcvae.gin",
}

# Representations and metrics of every study. "dlib:" configs are dlib's
# unsupervised_study_v1 files (the paper's MIG on the mean and sampled
# representations); "plugin:" ones are ours in gin/ (the MI decomposition,
# which needs the [mean, logvar] representation, and MIG per factor).
POSTPROCESS_CONFIGS = (
    "dlib:postprocess_configs/mean.gin",
    "dlib:postprocess_configs/sampled.gin",
    "plugin:postprocess/mean_logvar.gin",
)
EVAL_CONFIGS = ("dlib:metric_configs/mig.gin", "plugin:metrics/mi_decomposition_study.gin",
                "plugin:metrics/factor_mig.gin")

# Which metric is meaningful on which representation (by config name). Our
# runner evaluates only these pairs; dlib_reproduce evaluates every metric on
# every representation (MI then records "skipped" on mean-only
# representations, and MIG on [mean, logvar] is computed but means nothing).
# factor_mig is MIG per factor, on the mean representation only.
METRIC_REPRESENTATIONS = {
    "mig": ("mean", "sampled"),
    "mi_decomposition_study": ("mean_logvar",),
    "factor_mig": ("mean",),
}

# The seed rule of evaluation_pairs (job.py draws one seed per pair, in that
# order, after the postprocessing seeds). Metrics come in generations: the
# first is the metrics of the committed campaign, each later one the metrics
# added since, so a new metric's pairs draw their seeds after every existing
# pair's and adding a metric never changes an existing pair's seed. Append new
# metrics as a new last generation; never reorder. Within a generation pairs
# are ordered by (representation, metric) name; a metric listed nowhere comes
# after all generations.
METRIC_SEED_GENERATIONS: tuple[tuple[str, ...], ...] = (
    ("mig", "mi_decomposition_study"),  # the committed campaign
    ("factor_mig",),  # issue 21
)


def dlib_config_path(*parts: str) -> str:
    """Path of a config file shipped inside dlib, without importing dlib.

    Args:
      *parts: Path components below dlib's ``config/`` directory, e.g.
        ``("unsupervised_study_v1", "metric_configs", "mig.gin")``.

    Returns:
      The absolute path (the same file dlib's ``resources.get_file`` returns).
    """
    spec = importlib.util.find_spec("disentanglement_lib")
    if spec is None or spec.origin is None:
        raise SplitencUserError(
            "disentanglement_lib is not installed in this Python; run `make venv` (or "
            "`pip install --no-deps disentanglement-lib==1.5`, see README) and retry")
    return str(Path(spec.origin).parent.joinpath("config", *parts))


def config_file(ref: str) -> str:
    """Path of a config reference (see :func:`config_ref`).

    ``'dlib:<path>'`` is in dlib's ``config/unsupervised_study_v1`` (the
    metrics and representations of the plugin's studies),
    ``'dlib-config:<path>'`` anywhere in dlib's ``config/`` (any dlib study's
    files), ``'plugin:<path>'`` in the plugin's ``gin/``; an absolute path (a
    user study's file outside both) is itself.
    """
    from splitenc_plugin import gin_dir

    if Path(ref).is_absolute():
        return ref
    kind, _, relative = ref.partition(":")
    resolvers = {
        "dlib": lambda: dlib_config_path("unsupervised_study_v1", *relative.split("/")),
        "dlib-config": lambda: dlib_config_path(*relative.split("/")),
        "plugin": lambda: str(gin_dir() / relative),
    }
    if kind not in resolvers:
        raise ValueError(f"config reference {ref!r} must start with 'dlib:', 'dlib-config:' "
                         "or 'plugin:', or be an absolute path")
    return resolvers[kind]()


def config_ref(path: str) -> str:
    """The install-independent reference of a config file (inverse of :func:`config_file`).

    A file in dlib's ``config/`` becomes ``'dlib-config:<path below config/>'``,
    one in the plugin's ``gin/`` ``'plugin:<path>'``; any other file keeps its
    absolute path. References, not paths, go into job identities, so that a job
    finished on one machine is recognized on another.
    """
    from splitenc_plugin import gin_dir

    resolved = Path(path).resolve()
    roots = (("dlib-config", Path(dlib_config_path()).resolve()), ("plugin", gin_dir().resolve()))
    for kind, root in roots:
        if resolved.is_relative_to(root):
            return f"{kind}:{resolved.relative_to(root).as_posix()}"
    return str(resolved)


def config_name(ref: str) -> str:
    """'dlib:metric_configs/mig.gin' -> 'mig' (dlib's name for its result dirs)."""
    return ref.rsplit("/", 1)[-1].removesuffix(".gin")


def evaluation_pairs(postprocess_configs: tuple[str, ...],
                     eval_configs: tuple[str, ...],
                     all_pairs: bool = False) -> list[tuple[str, str]]:
    """(representation config, metric config) pairs to evaluate, in seed order.

    With ``all_pairs`` (a dlib study run as ``dlib_reproduce`` runs it): every
    metric on every representation, representations by name, then metrics by
    name — ``dlib_reproduce``'s loops, so each pair draws dlib's seed.

    Otherwise (the plugin's studies) only the pairs of
    :data:`METRIC_REPRESENTATIONS`, ordered by the metric's generation in :data:`METRIC_SEED_GENERATIONS`,
    then by config names (not file paths, so that the seeds drawn for them do
    not depend on where dlib and the plugin are installed).
    """
    def generation(metric: str) -> int:
        name = config_name(metric)
        return next((i for i, names in enumerate(METRIC_SEED_GENERATIONS) if name in names),
                    len(METRIC_SEED_GENERATIONS))

    if all_pairs:
        return [(post, metric) for post in sorted(postprocess_configs, key=config_name)
                for metric in sorted(eval_configs, key=config_name)]
    pairs = [(post, metric) for post in postprocess_configs for metric in eval_configs
             if config_name(post) in METRIC_REPRESENTATIONS.get(config_name(metric), ())]
    return sorted(pairs, key=lambda pair: (generation(pair[1]), config_name(pair[0]),
                                           config_name(pair[1])))


def restrict_metrics(study: str, eval_configs: Sequence[str],
                     metrics: Sequence[str] | None) -> tuple[str, ...]:
    """The ``--metrics`` restriction of a study's run, checked.

    The restriction selects which pairs a job evaluates; it never changes the
    pairs' seeds (:meth:`JobSpec.pipeline_seeds`), so a restricted run's
    results equal the full run's.

    Args:
      study: Study name (for the error message).
      eval_configs: The study's metric configs (references or paths).
      metrics: Metric config names (e.g. ``["mig"]``); None: no restriction.

    Returns:
      The named metrics, sorted; () when there is no restriction, including
      one that names every metric of the study (the same jobs as without it).

    Raises:
      SplitencUserError: On an empty list or a name that is not one of the
        study's metrics.
    """
    if metrics is None:
        return ()
    known = sorted(config_name(c) for c in eval_configs)
    if not metrics:
        raise SplitencUserError(f"--metrics needs at least one name (the metrics of {study}: "
                                f"{', '.join(known)})")
    unknown = sorted(set(metrics) - set(known))
    if unknown:
        raise SplitencUserError(f"--metrics {', '.join(unknown)}: not a metric of {study} "
                                f"(its metrics: {', '.join(known)})")
    return () if set(metrics) == set(known) else tuple(sorted(set(metrics)))

# dlib's in-memory random dataset (with factors, so MIG works): allowed as a
# dataset override for tests and smoke runs, never part of a study's grid.
TEST_DATASET = "dummy_data"


class UnknownStudyError(SplitencUserError):
    """A study name that is not one of the plugin's studies."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of a study: one point of its grid.

    Attributes:
      model_num: Index in the study (``dlib_reproduce --model_num``).
      dataset: dlib dataset name (``dataset.name``).
      model: dlib model name (``vae``, ``factor_vae``, ``beta_tc_vae``).
      encoder: ``conv_encoder`` (dlib's), ``split_conv_encoder`` (ours), or a
        capacity control: ``matched_split_conv_encoder``, ``wide_conv_encoder``
        (see :mod:`splitenc_plugin.model.encoders`).
      sigma: Correlation weight of the reparameterization noise (Eq 13).
      seed: ``model.random_seed``.
      config: File name of the gin config in :func:`splitenc_plugin.gin_dir`.
    """

    model_num: int
    dataset: str
    model: str
    encoder: str
    sigma: float
    seed: int
    config: str

    @property
    def bindings(self) -> list[str]:
        """The study's gin bindings for this model (added to its config)."""
        return [f"dataset.name = '{self.dataset}'", f"model.random_seed = {self.seed}"]


class StudyGrid:
    """A full-factorial grid over datasets, models, encoders, sigmas and seeds.

    Attributes:
      name: The study name (key in dlib's ``reproduce.STUDIES``).
      description: One line: what the study reproduces.
      axes: Axis name -> values, in enumeration order (last axis fastest).
      contrasts: (baseline, variant) pairs of values of the study's compared
        axis that the aggregator compares besides each value against the
        first (:mod:`splitenc_plugin.results.comparisons`); e.g. the split
        encoder (variant) against the widened conv encoder of the same
        capacity (baseline).
    """

    AXES = ("dataset", "model", "encoder", "sigma", "seed")

    def __init__(self, name: str, description: str, *, datasets: Sequence[str],
                 models: Sequence[str], encoders: Sequence[str], sigmas: Sequence[float],
                 seeds: Sequence[int],
                 contrasts: Sequence[tuple[object, object]] = ()) -> None:
        self.name = name
        self.description = description
        self.contrasts: tuple[tuple[object, object], ...] = tuple(map(tuple, contrasts))
        self.axes: dict[str, tuple] = {
            "dataset": tuple(datasets), "model": tuple(models), "encoder": tuple(encoders),
            "sigma": tuple(float(s) for s in sigmas), "seed": tuple(int(s) for s in seeds)}
        self._specs: list[ModelSpec] = []
        for values in itertools.product(*(self.axes[axis] for axis in self.AXES)):
            point = dict(zip(self.AXES, values))
            key = (point["model"], point["encoder"], point["sigma"])
            if key not in MODEL_CONFIGS:
                raise ValueError(f"study {name}: no gin config for {key}")
            self._specs.append(ModelSpec(model_num=len(self._specs), config=MODEL_CONFIGS[key],
                                         **point))

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def specs(self) -> list[ModelSpec]:
        """Every model of the study, indexed by model_num."""
        return list(self._specs)

    def spec(self, model_num: int) -> ModelSpec:
        """The model with this number.

        Raises:
          SplitencUserError: If model_num is out of range.
        """
        if not 0 <= model_num < len(self._specs):
            raise SplitencUserError(
                f"{self.name} has models 0..{len(self._specs) - 1}, not {model_num}.")
        return self._specs[model_num]

    def select(self, **filters: Iterable | None) -> list[ModelSpec]:
        """The models whose axis values are all in the given filters.

        Args:
          **filters: Axis name (``dataset``, ``model``, ``encoder``, ``sigma``,
            ``seed``) -> allowed values; None means all.

        Returns:
          The matching models, in model_num order.

        Raises:
          SplitencUserError: For an unknown axis or a value the study does not
            have (the message lists the valid values).
        """
        allowed: dict[str, set] = {}
        for axis, values in filters.items():
            if values is None:
                continue
            if axis not in self.axes:
                raise SplitencUserError(f"unknown study axis {axis!r}; use {', '.join(self.AXES)}")
            values = {float(v) if axis == "sigma" else v for v in values}
            unknown = sorted(map(str, values - set(self.axes[axis])))
            if unknown:
                raise SplitencUserError(
                    f"{self.name} has no {axis} {', '.join(unknown)}; its {axis}s are "
                    f"{', '.join(map(str, self.axes[axis]))}")
            allowed[axis] = values
        return [s for s in self._specs
                if all(getattr(s, axis) in values for axis, values in allowed.items())]


_SEEDS = tuple(range(10))

GRIDS: dict[str, StudyGrid] = {grid.name: grid for grid in (
    StudyGrid(
        "correlated_noise_study_v1",
        "Sec 5.1 / Fig 2: VAE and FactorVAE with factorized (sigma=0) vs correlated "
        f"(sigma={PAPER_SIGMA:g}) reparameterization noise on dSprites",
        datasets=["dsprites_full"], models=["vae", "factor_vae"], encoders=["conv_encoder"],
        sigmas=[0.0, PAPER_SIGMA], seeds=_SEEDS),
    StudyGrid(
        "split_encoder_study_v1",
        "Sec 5.2 / Figs 3-8: FactorVAE and beta-TCVAE with dlib's conv encoder vs the "
        "split encoder on dSprites, SmallNORB and Cars3D",
        datasets=["dsprites_full", "smallnorb", "cars3d"], models=["factor_vae", "beta_tc_vae"],
        encoders=["conv_encoder", "split_conv_encoder"], sigmas=[0.0], seeds=_SEEDS),
    StudyGrid(
        "split_encoder_capacity_study_v1",
        "Capacity control (not in the paper): split_encoder_study_v1 plus the split encoder "
        "narrowed to the conv encoder's parameter count and the conv encoder widened, unsplit, "
        "to the split encoder's",
        datasets=["dsprites_full", "smallnorb", "cars3d"], models=["factor_vae", "beta_tc_vae"],
        encoders=["conv_encoder", "split_conv_encoder", "matched_split_conv_encoder",
                  "wide_conv_encoder"], sigmas=[0.0], seeds=_SEEDS,
        # Besides each control against the conv encoder: the split encoder
        # against the unsplit one of its capacity ("does a wider vanilla
        # encoder do as well as the split one?").
        contrasts=[("wide_conv_encoder", "split_conv_encoder")]),
)}
"""Study name -> grid."""


def axis_values(axis: str) -> tuple:
    """The values one axis (``model``, ``encoder``, ...) takes in any of :data:`GRIDS`.

    In the grids' order, each value once: what a selection filter of the
    plugin's studies accepts, e.g. for the command line's help.
    """
    return tuple(dict.fromkeys(v for grid in GRIDS.values() for v in grid.axes[axis]))


def get_grid(name: str) -> StudyGrid:
    """The grid of the plugin study with this name.

    Raises:
      UnknownStudyError: With the list of known studies.
    """
    try:
        return GRIDS[name]
    except KeyError:
        raise UnknownStudyError(
            f"unknown study {name!r}; the plugin's studies are {', '.join(GRIDS)}") from None


# Fields of a JobSpec that define what the job computes. Two specs with equal
# identities produce the same results; anything else is bookkeeping.
IDENTITY_FIELDS = ("study", "model_num", "config", "bindings", "steps")


@dataclass(frozen=True)
class JobSpec:
    """Everything one job (train -> postprocess -> evaluate) needs, as JSON.

    Attributes:
      study: Study name.
      model_num: Model number in the study.
      config: The model's gin config (file name in ``gin/``).
      bindings: Training bindings in dlib_reproduce's order: ``model.name``,
        ``model.model_num``, the study's bindings (``dataset.name`` possibly
        overridden), then ``model.training_steps`` and any extra bindings.
      steps: ``model.training_steps``.
      dataset, model, encoder, sigma, seed: The model's grid point (dataset
        after any override).
      postprocess_configs: Representation configs as ``dlib:`` references
        (dlib's ``config/unsupervised_study_v1`` files) or ``plugin:`` ones
        (ours, in ``gin/``); see :data:`POSTPROCESS_CONFIGS`.
      eval_configs: Metric configs, referenced the same way.
      gin_configs: Fragments layered over the training config after the
        study's bindings (absolute paths; :mod:`.dlib_any`).
      gin_config_digests: Their SHA-256 digests when planned; the job
        refuses to train if a fragment changed since.
      all_pairs: Evaluate every metric on every representation, as
        ``dlib_reproduce`` (dlib's and users' studies), instead of the
        plugin's :data:`METRIC_REPRESENTATIONS` pairs.
      metrics: The metric names a run was restricted to (``--metrics``);
        empty: the study's own list. ``eval_configs`` stays the study's full
        list, so every pair still draws its seed (:meth:`evaluates`).
    """

    study: str
    model_num: int
    config: str
    bindings: tuple[str, ...]
    steps: int
    dataset: str
    model: str
    encoder: str
    sigma: float
    seed: int
    postprocess_configs: tuple[str, ...] = field(default=POSTPROCESS_CONFIGS)
    eval_configs: tuple[str, ...] = field(default=EVAL_CONFIGS)
    gin_configs: tuple[str, ...] = ()
    gin_config_digests: tuple[str, ...] = ()
    all_pairs: bool = False
    metrics: tuple[str, ...] = ()

    def identity(self) -> dict:
        """The fields that define the job's results (compared on re-runs).

        Fragments enter as ``gin_configs`` (file name and SHA-256 of each, in
        order: where a fragment lives does not matter, its content does), a
        metric restriction as ``metrics``; both keys are absent when unused, so
        the identities of jobs planned without them are unchanged.
        """
        identity = {name: _jsonable(getattr(self, name)) for name in IDENTITY_FIELDS}
        if self.gin_configs:
            identity["gin_configs"] = [{"name": Path(path).name, "sha256": digest}
                                       for path, digest in zip(self.gin_configs,
                                                               self.gin_config_digests)]
        if self.metrics:
            identity["metrics"] = list(self.metrics)
            # Restricted jobs planned before 2026-12-03 drew other seeds (only
            # their own pairs drew one): this key keeps them from passing as
            # results of the full run's seeds.
            identity["metric_seeds"] = "full_run"
        return identity

    def evaluates(self, metric_config: str) -> bool:
        """Whether the job evaluates this metric config (any, unless ``metrics`` restricts)."""
        return not self.metrics or config_name(metric_config) in self.metrics

    def pipeline_seeds(self) -> tuple[list[tuple[str, int]], list[tuple[str, str, int]]]:
        """The seeds of postprocessing and evaluation, drawn as ``dlib_reproduce`` draws them.

        One ``np.random.RandomState(0)``: one draw per representation config
        (by name), then one per pair of :func:`evaluation_pairs`. The pairs of
        metrics outside a ``metrics`` restriction draw their seeds too and are
        then left out, so a restriction never moves the seed of a pair it keeps.

        Returns:
          ``(postprocess, evaluate)``: ``[(representation config, seed)]`` and
          ``[(representation config, metric config, seed)]`` of the pairs the
          job evaluates, in order.
        """
        import numpy as np  # here: planning jobs (this module's main use) needs no numpy

        random_state = np.random.RandomState(0)
        postprocess = [(config, int(random_state.randint(2**32)))
                       for config in sorted(self.postprocess_configs, key=config_name)]
        pairs = [(post, metric, int(random_state.randint(2**32)))
                 for post, metric in evaluation_pairs(self.postprocess_configs,
                                                      self.eval_configs, self.all_pairs)]
        return postprocess, [pair for pair in pairs if self.evaluates(pair[1])]

    def config_path(self) -> str:
        """The model's training config file (a shipped ``gin/`` name or a reference)."""
        if ":" in self.config or Path(self.config).is_absolute():
            return config_file(self.config)
        from splitenc_plugin import gin_dir

        return str(gin_dir() / self.config)

    def training_bindings(self) -> list[str]:
        """The training bindings with the fragments layered in (see :mod:`.dlib_any`).

        The fragments come as gin ``include`` statements after the study's
        bindings and ``model.training_steps``, before any extra bindings.
        """
        bindings = list(self.bindings)
        steps_at = next((i for i, b in enumerate(bindings)
                         if b.replace(" ", "").startswith("model.training_steps=")),
                        len(bindings) - 1)
        includes = [f"include '{path}'" for path in self.gin_configs]
        return bindings[:steps_at + 1] + includes + bindings[steps_at + 1:]

    def to_dict(self) -> dict:
        """The spec as a JSON-serializable dict."""
        return {key: _jsonable(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> JobSpec:
        """Inverse of :meth:`to_dict` (ignores unknown keys)."""
        names = cls.__dataclass_fields__
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
                  if k in names}
        return cls(**kwargs)


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


# Parameters that each job's spec fixes (its grid point, and what
# dlib_reproduce prepends): an extra binding of one would train something other
# than what the job records, so results would be filed under the wrong grid
# point. Value: how to get a different one.
GRID_BINDINGS = {
    "model.name": "it is the model's gin config name",
    "model.model_num": "it is the job's model number",
    "model.training_steps": "use --steps",
    "model.random_seed": "use --seeds",
    "dataset.name": "use --datasets",
    "model.model": "use --models",
    "encoder.encoder_fn": "use --encoders",
    "reparameterization.noise_fn": "use --sigmas",
    "correlated_noise.sigma": "use --sigmas",
}


# What a dlib study's job fixes besides its study's own bindings (which are
# its identity, so overriding one is visible, but still not that model).
DLIB_STUDY_BINDINGS = {
    "model.model_num": "it is the job's model number",
    "model.training_steps": "use --steps",
    "model.random_seed": "select seeds with --where \"model.random_seed = 0\"",
    "dataset.name": "select datasets with --where \"dataset.name = 'dsprites_full'\"",
}


def check_extra_bindings(bindings: Sequence[str],
                         fixed: dict[str, str] | None = None) -> None:
    """Rejects extra bindings that do not parse or that override a job's grid point.

    Parsed with gin's parser alone (no configurable is looked up, so neither
    TensorFlow nor dlib is imported); unknown names surface in the job itself.

    Args:
      bindings: ``--gin_bindings`` values, e.g. ``"model.eval_steps = 5"``.
      fixed: Parameter -> how to change it instead (default
        :data:`GRID_BINDINGS`, the plugin's studies; :data:`DLIB_STUDY_BINDINGS`
        for a dlib study, where ``--gin_bindings "encoder.encoder_fn = ..."``
        is a legitimate drop-in).

    Raises:
      SplitencUserError: naming the binding and the option to use instead.
    """
    from gin import config_parser

    from splitenc_plugin._gin import parse_statements

    for binding in bindings:
        statements = parse_statements(
            binding, f"--gin_bindings {binding!r}",
            "write one 'name.parameter = value' per --gin_bindings")
        for statement in statements:
            if not isinstance(statement, config_parser.BindingStatement):
                raise SplitencUserError(
                    f"--gin_bindings {binding!r} is not a binding; import and include "
                    "statements belong in a gin config")
            key = f"{statement.selector.split('.')[-1]}.{statement.arg_name}"
            fixed = GRID_BINDINGS if fixed is None else fixed
            if key in fixed:
                raise SplitencUserError(
                    f"--gin_bindings {binding!r} sets {key}, which each job of a study fixes "
                    f"({fixed[key]}); the job would record one grid point and "
                    "train another")


def make_job_spec(study: str, model_num: int, steps: int = DEFAULT_TRAINING_STEPS,
                  dataset: str | None = None,
                  extra_bindings: Sequence[str] = (),
                  metrics: Sequence[str] | None = None) -> JobSpec:
    """The job that trains, postprocesses and evaluates one model of a study.

    Args:
      study: Study name.
      model_num: Model number in the study.
      steps: ``model.training_steps`` (always bound explicitly, so that it is
        part of the job's identity).
      dataset: Replaces the study's ``dataset.name`` (used for
        :data:`TEST_DATASET`); None keeps the study's.
      extra_bindings: Gin bindings appended last (they win).
      metrics: Evaluate only these metrics of :data:`EVAL_CONFIGS` (by config
        name, e.g. ``["mig"]``); None: all.

    Returns:
      The job's spec.

    Raises:
      SplitencUserError: On a metric name that is not one of the study's.
    """
    restriction = restrict_metrics(study, EVAL_CONFIGS, metrics)
    spec = get_grid(study).spec(model_num)
    dataset = spec.dataset if dataset is None else dataset
    study_bindings = [f"dataset.name = '{dataset}'" if b.startswith("dataset.name") else b
                      for b in spec.bindings]
    bindings = [
        # Exactly what dlib_reproduce prepends to the study's bindings.
        "model.name = '{}'".format(spec.config.replace(".gin", "")),
        f"model.model_num = {model_num}",
        *study_bindings,
        f"model.training_steps = {int(steps)}",
        *extra_bindings,
    ]
    return JobSpec(study=study, model_num=model_num, config=spec.config,
                   bindings=tuple(bindings), steps=int(steps), dataset=dataset,
                   model=spec.model, encoder=spec.encoder, sigma=spec.sigma, seed=spec.seed,
                   metrics=restriction)
