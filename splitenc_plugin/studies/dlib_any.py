"""Any study in dlib's ``reproduce.STUDIES`` — dlib's own, ours, a user's — as job specs.

The plugin's grids (:mod:`.grid`) know their axes; a dlib ``Study`` only answers
``get_model_config(model_num)``, ``get_postprocess_config_files()`` and
``get_eval_config_files()``. This module turns such a study into the runner's
:class:`~.grid.JobSpec` objects, exactly as ``dlib_reproduce`` would run them,
plus the plugin's fragments layered on top::

    splitenc_reproduce --study unsupervised_study_v1 --model_nums 0-1 \\
        --gin_config gin/fragments/split_encoder.gin --output_directory runs

**One registry.** Studies are looked up in dlib's ``reproduce.STUDIES`` (the
compat layer merges the plugin's into it). A user's study is registered the
same way, by a module that the runner imports first (``--study_module
mypkg.studies``), whose import adds ``STUDIES["my_study"] = MyStudy()`` to
``disentanglement_lib.config.reproduce.STUDIES``; dlib's own
``dlib_reproduce`` then finds it too once that module is imported.

**Training config, in this order** (gin: later wins):

1. the study's model config file (``get_model_config``'s second value);
2. ``model.name`` and ``model.model_num``, prepended as ``dlib_reproduce`` does,
   then the study's bindings for the model, then ``model.training_steps``;
3. the ``--gin_config`` fragments, in the order given, as ``include``
   statements *after* the study's bindings — so a fragment's
   ``encoder.encoder_fn`` wins over ``unsupervised_study_v1``'s
   ``encoder.encoder_fn = @conv_encoder`` binding;
4. ``--gin_bindings``, last.

The fragments' names and SHA-256 digests are part of the job's identity
(:meth:`~.grid.JobSpec.identity`): a finished job trained with other fragment
content is "in the way", not "finished".

**Which models.** ``--model_nums`` (ranges) and ``--where "dataset.name =
'dsprites_full'"`` filters on the model's own bindings, compared after gin's
parser has read both sides (so spacing and quoting do not matter).

Reading a dlib study imports dlib and therefore TensorFlow (several seconds);
the plugin's own studies keep their fast, TensorFlow-free path in :mod:`.grid`.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from splitenc_plugin._gin import parse_statements
from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.studies.grid import (
    DEFAULT_TRAINING_STEPS,
    GRIDS,
    JobSpec,
    config_ref,
    restrict_metrics,
)


class StudyError(SplitencUserError):
    """A study, model selection or fragment the runner cannot use."""


# --------------------------------------------------------------------------
# The registry: dlib's reproduce.STUDIES
# --------------------------------------------------------------------------
def import_study_modules(modules: Sequence[str]) -> None:
    """Imports user modules that register studies in dlib's ``reproduce.STUDIES``.

    Raises:
      StudyError: If a module cannot be imported (naming it and the error).
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise StudyError(
                f"--study_module {name!r} cannot be imported ({exc}); pass a module on "
                "PYTHONPATH whose import adds your Study to "
                "disentanglement_lib.config.reproduce.STUDIES") from None


def dlib_studies() -> dict:
    """dlib's ``reproduce.STUDIES`` (name -> ``Study``), the plugin's and users' included."""
    from disentanglement_lib.config import reproduce

    return reproduce.STUDIES


def get_study(name: str):
    """The registered ``Study`` called ``name``.

    Raises:
      StudyError: Listing the registered studies and how to add one.
    """
    studies = dlib_studies()
    if name not in studies:
        raise StudyError(
            f"unknown study {name!r}; registered studies: {', '.join(sorted(studies))}. "
            "A study of your own: register it in disentanglement_lib.config.reproduce.STUDIES "
            "from a module and pass --study_module MODULE")
    return studies[name]


def is_plugin_grid(name: str) -> bool:
    """Whether ``name`` is one of the plugin's own grids (fast path, no dlib import)."""
    return name in GRIDS


# --------------------------------------------------------------------------
# A study's models
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyModel:
    """One model of a dlib study, as ``get_model_config`` describes it.

    Attributes:
      model_num: Its number in the study.
      bindings: The study's bindings for it (without what dlib_reproduce prepends).
      config: Its model config file (absolute path).
    """

    model_num: int
    bindings: tuple[str, ...]
    config: str


def study_models(study, model_nums: Iterable[int] | None = None) -> list[StudyModel]:
    """The study's models (all, or those numbered ``model_nums``).

    dlib's studies build their whole sweep on every ``get_model_config`` call
    (``sweep.get_config()[model_num]``): enumerating ``unsupervised_study_v1``'s
    12,600 models that way would rebuild it 12,600 times. So the model count
    comes from the study module's ``get_config()`` where it has one (dlib's
    convention); otherwise numbers are tried from 0 until ``get_model_config``
    raises ``IndexError``.

    Raises:
      StudyError: If a requested model number does not exist.
    """
    count = _model_count(study)
    if model_nums is None:
        numbers = range(count) if count is not None else _probe_numbers(study)
    else:
        numbers = sorted(set(model_nums))
    models = []
    for num in numbers:
        try:
            bindings, config = study.get_model_config(num)
        except IndexError:
            raise StudyError(
                f"model {num} does not exist in this study"
                + (f" (it has {count} models, 0-{count - 1})" if count else "")
                + "; check --model_nums") from None
        models.append(StudyModel(num, tuple(bindings), str(config)))
    return models


def _model_count(study) -> int | None:
    get_config = getattr(sys.modules.get(type(study).__module__), "get_config", None)
    if not callable(get_config):
        return None
    try:
        return len(get_config())
    except Exception:  # noqa: BLE001 - a module's helper of another shape: probe instead
        return None


def _probe_numbers(study) -> Iterable[int]:
    num = 0
    while True:
        try:
            study.get_model_config(num)
        except IndexError:
            return
        yield num
        num += 1


# --------------------------------------------------------------------------
# --where filters
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Where:
    """One ``--where "name.parameter = value"`` filter on a model's bindings."""

    key: str
    value: object
    text: str

    def matches(self, bindings: dict[str, object]) -> bool:
        """Whether a model whose parsed bindings are ``bindings`` passes."""
        return self.key in bindings and bindings[self.key] == self.value


def _parse_bindings(text: str, what: str = "a study's bindings",
                    fix: str = "repair the study's definition") -> dict[str, object]:
    """'a.b = 1\\nc.d = @e()' -> {'a.b': 1, 'c.d': '@e()'}, read by gin's parser.

    Raises:
      SplitencUserError: Where gin cannot parse ``text`` (naming ``what`` and ``fix``).
    """
    from gin import config_parser

    out: dict[str, object] = {}
    for statement in parse_statements(text, what, fix):
        if isinstance(statement, config_parser.BindingStatement):
            key = f"{statement.selector}.{statement.arg_name}"
            out[key] = _plain(statement.value)
    return out


def _plain(value: object) -> object:
    """A parsed gin value as a comparable Python value; references as ``'@name'`` / ``'@name()'``."""
    # gin parses '@vae()' into a (possibly unknown-configurable) reference
    # object without a value equality; its selector and evaluate flag are it.
    selector = getattr(value, "selector", None)
    if selector is None and hasattr(value, "configurable"):
        selector = value.configurable.name
    if selector is not None:
        return f"@{selector}{'()' if getattr(value, 'evaluate', False) else ''}"
    return value


def parse_where(expressions: Sequence[str]) -> list[Where]:
    """Parses ``--where`` expressions.

    Raises:
      StudyError: If gin cannot parse one, or it is not exactly one binding.
    """
    filters = []
    for text in expressions:
        try:
            parsed = _parse_bindings(text, f"--where {text!r}",
                                     "write e.g. --where \"dataset.name = 'dsprites_full'\"")
        except SplitencUserError as exc:
            raise StudyError(str(exc)) from None
        if len(parsed) != 1:
            raise StudyError(f"--where {text!r} must be exactly one 'name.parameter = value'")
        (key, value), = parsed.items()
        filters.append(Where(key, value, text))
    return filters


def select_models(models: Sequence[StudyModel], where: Sequence[Where]) -> list[StudyModel]:
    """The models whose bindings pass every filter."""
    if not where:
        return list(models)
    return [m for m in models
            if all(w.matches(_parse_bindings("\n".join(m.bindings))) for w in where)]


# --------------------------------------------------------------------------
# Fragments and job specs
# --------------------------------------------------------------------------
def resolve_fragment(path: str) -> Path:
    """The fragment file ``path`` names, as gin reads it (:func:`splitenc_plugin.config_path`).

    Raises:
      StudyError: If there is none.
    """
    from splitenc_plugin import config_path, gin_dir

    fragment = config_path(path)
    if fragment is not None:
        return fragment.resolve()
    raise StudyError(f"--gin_config {path!r} is not a file (nor a shipped config under "
                     f"{gin_dir()}); pass a path to a .gin fragment, e.g. "
                     "gin/fragments/split_encoder.gin")


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (a fragment's identity)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class _Layering:
    """What every job of one run shares, computed once (not once per model).

    Attributes:
      fragments: Fragment paths, resolved.
      digests: Their SHA-256 digests.
      fragment_bindings: Their bindings, read statically (later wins).
      postprocess_configs, eval_configs: The study's configs as references.
      metrics: The ``--metrics`` restriction (empty: none); ``eval_configs``
        is the study's full list either way.
    """

    fragments: tuple[str, ...]
    digests: tuple[str, ...]
    fragment_bindings: dict
    postprocess_configs: tuple[str, ...]
    eval_configs: tuple[str, ...]
    metrics: tuple[str, ...]


def _resolved(gin_configs: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The fragments' resolved paths and their SHA-256 digests, in order.

    Raises:
      StudyError: On a missing fragment.
    """
    paths = tuple(str(resolve_fragment(p)) for p in gin_configs)
    for path in paths:  # gin's syntax now, not in every job that would read it
        parse_statements(Path(path).read_text(), f"--gin_config {path}",
                         "fix the fragment's syntax (one 'name.parameter = value' per line)")
    return paths, tuple(file_digest(p) for p in paths)


def _layering(study_name: str, study, gin_configs: Sequence[str],
              metrics: Sequence[str] | None) -> _Layering:
    """The run's fragments and the study's configs, checked.

    Raises:
      StudyError: On a missing fragment.
      SplitencUserError: On a bad ``--metrics`` (:func:`.grid.restrict_metrics`).
    """
    fragments, digests = _resolved(gin_configs)
    fragment_bindings: dict = {}
    for path in fragments:
        fragment_bindings.update(_parse_bindings(Path(path).read_text()))  # parsed by _resolved
    # All of the study's metrics stay in the spec, so that each pair draws
    # dlib_reproduce's seed; the restriction only skips pairs.
    eval_configs = sorted(study.get_eval_config_files())
    restriction = restrict_metrics(study_name, eval_configs, metrics)
    return _Layering(
        fragments=fragments, digests=digests,
        fragment_bindings=fragment_bindings,
        postprocess_configs=tuple(config_ref(c)
                                  for c in sorted(study.get_postprocess_config_files())),
        eval_configs=tuple(config_ref(c) for c in eval_configs),
        metrics=restriction)


def _job_spec(study_name: str, model: StudyModel, layering: _Layering, steps: int,
              extra_bindings: Sequence[str], dataset: str | None) -> JobSpec:
    """The job that runs one model of a dlib study as ``dlib_reproduce`` does, plus fragments.

    Every postprocessing config of the study, each metric on every
    representation, seeds drawn in ``dlib_reproduce``'s order.
    """
    study_bindings = list(model.bindings)
    if dataset is not None:
        study_bindings = [f"dataset.name = '{dataset}'"
                          if b.replace(" ", "").startswith("dataset.name=") else b
                          for b in study_bindings]
    bindings = (
        # What dlib_reproduce prepends (its model.name is the config file's
        # name; a study binding of model.name, later, wins as in dlib).
        f"model.name = '{Path(model.config).name.removesuffix('.gin')}'",
        f"model.model_num = {model.model_num}",
        *study_bindings,
        f"model.training_steps = {int(steps)}",
        *extra_bindings,
    )
    # The grid point the job trains, as far as bindings tell (fragments read
    # statically, later wins as in gin), for the plan's display and filters;
    # the aggregator reads the operative config the job records instead.
    parsed = _parse_bindings("\n".join(study_bindings))
    effective = {**parsed, **layering.fragment_bindings,
                 **_parse_bindings("\n".join(extra_bindings))}
    correlated = str(effective.get("reparameterization.noise_fn", "")).startswith(
        "@correlated_noise")
    return JobSpec(
        study=study_name, model_num=model.model_num, config=config_ref(model.config),
        bindings=bindings, steps=int(steps),
        dataset=str(parsed.get("dataset.name", "")),
        model=str(parsed.get("model.name", Path(model.config).stem)),
        encoder=str(effective.get("encoder.encoder_fn", "")).lstrip("@"),
        sigma=float(effective.get("correlated_noise.sigma", "nan")) if correlated else 0.0,
        seed=int(parsed.get("model.random_seed", 0)),
        postprocess_configs=layering.postprocess_configs,
        eval_configs=layering.eval_configs,
        gin_configs=layering.fragments,
        gin_config_digests=layering.digests,
        all_pairs=True,
        metrics=layering.metrics)


def with_fragments(specs: Sequence[JobSpec], gin_configs: Sequence[str]) -> list[JobSpec]:
    """``specs`` with fragments layered on (a plugin study's jobs, say).

    The fragments are resolved and hashed once, for all the jobs.
    """
    if not gin_configs:
        return list(specs)
    paths, digests = _resolved(gin_configs)
    return [replace(spec, gin_configs=paths, gin_config_digests=digests) for spec in specs]


def matches_where(spec: JobSpec, where: Sequence[Where]) -> bool:
    """Whether a planned job's bindings pass every ``--where`` filter."""
    if not where:
        return True
    bindings = _parse_bindings("\n".join(spec.bindings))
    return all(w.matches(bindings) for w in where)


def study_job_specs(study_name: str, steps: int = DEFAULT_TRAINING_STEPS,
                    model_nums: Iterable[int] | None = None, where: Sequence[str] = (),
                    gin_configs: Sequence[str] = (), extra_bindings: Sequence[str] = (),
                    metrics: Sequence[str] | None = None,
                    dataset: str | None = None) -> list[JobSpec]:
    """The jobs of a registered dlib study's selected models, fragments layered on.

    Args:
      study_name: A name in ``reproduce.STUDIES`` (import ``--study_module``s first).
      steps: ``model.training_steps``.
      model_nums: Model numbers to consider (None: all of the study's).
      where: ``--where`` expressions; a model must pass all.
      gin_configs: Fragment paths, layered after the study's bindings.
      extra_bindings: ``--gin_bindings``, last.
      metrics: Metric config names to evaluate (e.g. ``["mig"]``); None: all
        of the study's.
      dataset: Replaces the models' ``dataset.name`` (tests' ``dummy_data``).

    Returns:
      One spec per selected model, by model number.

    Raises:
      StudyError: On an unknown study, model number, filter or fragment.
      SplitencUserError: On a bad ``--metrics`` (:func:`.grid.restrict_metrics`).
    """
    study = get_study(study_name)
    filters = parse_where(where)
    # Fragments, metrics and the study's configs: checked and read once per run,
    # before any model is read.
    layering = _layering(study_name, study, gin_configs, metrics)
    models = select_models(study_models(study, model_nums), filters)
    return [_job_spec(study_name, model, layering, steps, extra_bindings, dataset)
            for model in models]
