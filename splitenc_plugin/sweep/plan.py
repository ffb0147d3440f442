"""Planning a sweep: which jobs a selection names, and where each of them stands.

A *selection* is a study and filters (``--study S --datasets D --seeds 0-2``),
on the command line or one per line of a ``--selections`` file
(:func:`read_selections`). :func:`plan_jobs` turns one into :class:`Job`\\ s,
:func:`plan_selections` several into one queue.

Where a job stands is a :class:`JobState` with a :class:`JobStatus`, read from
its directory's markers (:func:`classify`): finished (``done.json`` of this
job's identity), resumable (an unfinished directory of this identity with a
checkpoint), to run, or in the way (a finished job that computed something
else) or unreadable (a marker that cannot be read; its results may be
complete). :func:`check_finished` refuses the last two for a whole selection
before anything runs: the runner never deletes or overwrites them.
:func:`plan_run` gives a run's :class:`RunPlan`: every job's state (also
"running" in another process, and "later" for ``--max_jobs``) and the queue
of jobs to start, in start order.

Pure Python: importing this module imports neither TensorFlow nor dlib;
planning a dlib study (not one of the plugin's grids) imports dlib to read it.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.studies.dlib_any import (
    get_study,
    is_plugin_grid,
    matches_where,
    parse_where,
    study_job_specs,
    with_fragments,
)
from splitenc_plugin.studies.grid import (
    DLIB_STUDY_BINDINGS,
    EVAL_CONFIGS,
    TEST_DATASET,
    JobSpec,
    axis_values,
    check_extra_bindings,
    config_name,
    get_grid,
    make_job_spec,
    restrict_metrics,
)
from splitenc_plugin.sweep.job_files import (
    DATA_FILE,
    DONE_FILE,
    RESUMES_FILE,
    MarkerError,
    ResultFileError,
    read_done,
    read_job_spec,
    read_record,
    read_result,
    resumable_step,
)
from splitenc_plugin.sweep.lock import held_elsewhere

__all__ = ["SELECTION_FILTERS", "Job", "JobMismatchError", "JobState", "JobStatus", "RunPlan",
           "add_selection_filters", "check_datasets", "check_finished", "classify",
           "current_data", "is_finished", "plan_jobs", "plan_run", "plan_selections",
           "read_selections", "resume_step"]


class JobMismatchError(SplitencUserError):
    """The output directory holds finished jobs that computed something else."""


@dataclass(frozen=True)
class Job:
    """A job to run (or skip): its spec, its directory and its options."""

    spec: JobSpec
    job_dir: Path
    visualize: bool = False
    prune_heavy: bool = False

    @property
    def key(self) -> str:
        """``<study>/<model_num>`` (``<study>+<fragment>/<model_num>``): its name in messages.

        The directory's name, not the study's alone: the same model with and
        without a fragment are two jobs of one queue.
        """
        return f"{self.job_dir.parent.name}/{self.spec.model_num}"

    def to_dict(self) -> dict:
        """A picklable, JSON-able description (what workers receive)."""
        return {"spec": self.spec.to_dict(), "job_dir": str(self.job_dir),
                "options": {"visualize": self.visualize, "prune_heavy": self.prune_heavy}}

    @classmethod
    def from_dict(cls, data: Mapping) -> Job:
        """Inverse of :meth:`to_dict`."""
        options = data.get("options", {})
        return cls(JobSpec.from_dict(data["spec"]), Path(data["job_dir"]),
                   visualize=bool(options.get("visualize", False)),
                   prune_heavy=bool(options.get("prune_heavy", False)))


class JobStatus(StrEnum):
    """Where a job stands, as its directory and its lock say."""

    #: ``done.json`` records this job's identity (for :func:`check_finished`
    #: also its data, and its result files are there): skipped, never touched.
    FINISHED = "finished"
    #: A finished job that computed something else (another identity, other
    #: data, or its result files are missing): never overwritten.
    IN_THE_WAY = "in the way"
    #: ``done.json`` or ``job.json`` exists but cannot be read: never deleted.
    UNREADABLE = "unreadable"
    #: Another process holds the job's lock (see :mod:`splitenc_plugin.sweep.lock`).
    RUNNING = "running"
    #: Unfinished, with a checkpoint of this identity to resume training from.
    RESUMABLE = "resumable"
    #: Unfinished and to run from scratch (its directory, if any, is replaced).
    TO_RUN = "to run"
    #: To run, but left for a later run by ``--max_jobs``.
    LATER = "later"


@dataclass(frozen=True)
class JobState:
    """A planned job and where it stands.

    Attributes:
      job: The job.
      status: Where it stands.
      resume_step: The checkpoint step training resumes from (a resumable
        job; also kept for one left for later), else None.
      problem: Why the job is in the way or unreadable (names the file), else ''.
    """

    job: Job
    status: JobStatus
    resume_step: int | None = None
    problem: str = ""


@dataclass(frozen=True)
class RunPlan:
    """What a run does: every selected job's state, and the jobs to start.

    Attributes:
      states: One state per selected job, in selection order (finished,
        running, resumable, to run or later).
      queue: The resumable and to-run jobs to start, in start order: in
        selection order (a selections file's lines are its priorities); within
        a selection, those that resume from a checkpoint first (their compute
        is partly spent), then by model_num.
    """

    states: tuple[JobState, ...]
    queue: tuple[Job, ...]

    def jobs(self, *statuses: JobStatus) -> list[Job]:
        """The jobs with one of these statuses, in selection order."""
        return [state.job for state in self.states if state.status in statuses]

    def state(self, key: str) -> JobState:
        """The state of job ``key`` (``<study>/<model_num>``)."""
        return next(state for state in self.states if state.job.key == key)

    @property
    def finished(self) -> list[Job]:
        """The finished jobs (skipped)."""
        return self.jobs(JobStatus.FINISHED)

    @property
    def running(self) -> list[Job]:
        """The jobs another process is running (left alone; they take no queue slot)."""
        return self.jobs(JobStatus.RUNNING)

    @property
    def later(self) -> list[Job]:
        """The unfinished jobs that ``--max_jobs`` leaves for a later run."""
        return self.jobs(JobStatus.LATER)


# --------------------------------------------------------------------------
# Selections
# --------------------------------------------------------------------------
#: The filter options of a selection (besides ``--study``): namespace name -> flag.
SELECTION_FILTERS: dict[str, str] = {
    "datasets": "--datasets", "models": "--models", "encoders": "--encoders",
    "sigmas": "--sigmas", "seeds": "--seeds", "model_nums": "--model_nums",
    "wheres": "--where", "gin_configs": "--gin_config", "metrics": "--metrics"}


def add_selection_filters(group) -> None:
    """Adds a selection's filter options (:data:`SELECTION_FILTERS`) to an argparse group."""
    flag = SELECTION_FILTERS
    group.add_argument(flag["datasets"], nargs="+", metavar="D",
                       help=f"the plugin's studies: {', '.join(axis_values('dataset'))}; "
                            f"'{TEST_DATASET}' (tests/smoke runs only) trains the first "
                            "dataset's models on dlib's in-memory dummy data")
    group.add_argument(flag["models"], nargs="+", metavar="M",
                       help=", ".join(axis_values("model")))
    group.add_argument(flag["encoders"], nargs="+", metavar="E",
                       help=", ".join(axis_values("encoder")) + " (conv_encoder is dlib's)")
    group.add_argument(flag["sigmas"], nargs="+", metavar="S",
                       help="noise correlation: "
                            + ", ".join(f"{s:g}" for s in axis_values("sigma")))
    group.add_argument(flag["seeds"], nargs="+", metavar="S", help="seeds, e.g. 0 1 2 or 0-9")
    group.add_argument(flag["model_nums"], nargs="+", metavar="N",
                       help="model numbers of the study, e.g. 0 1 2 or 0-9")
    group.add_argument(flag["wheres"], action="append", dest="wheres", metavar="BINDING",
                       help="keep models whose own bindings include this one, e.g. "
                            "\"dataset.name = 'dsprites_full'\" (repeatable: all must hold; "
                            "the way to slice a dlib study such as unsupervised_study_v1)")
    group.add_argument(flag["gin_configs"], action="append", dest="gin_configs",
                       metavar="FRAGMENT",
                       help="a gin fragment layered over each model's training config, after "
                            "the study's bindings (repeatable, in order; e.g. "
                            "gin/fragments/split_encoder.gin); its content is part of each "
                            "job's identity and its jobs go to DIR/<study>+<fragment>/")
    group.add_argument(flag["metrics"], nargs="+", metavar="NAME",
                       help="the study's metric configs to evaluate, by name (e.g. mig; the "
                            "plugin's studies: "
                            f"{', '.join(config_name(c) for c in EVAL_CONFIGS)}); "
                            "default: all of the study's. Each kept metric gets the seed it "
                            "has in the full run, so its results are the same")


def _split(values: Sequence[str] | None) -> list[str] | None:
    """Accepts ``--seeds 0 1 2`` as well as ``--seeds 0,1,2``."""
    if values is None:
        return None
    return [v for value in values for v in value.split(",") if v]


def _ints(values: Sequence[str] | None, flag: str) -> list[int] | None:
    values = _split(values)
    if values is None:
        return None
    out = []
    for value in values:
        lo, sep, hi = value.partition("-")
        try:
            first, last = (int(lo), int(hi)) if sep else (int(value), int(value))
        except ValueError:
            raise SplitencUserError(f"{flag} takes integers or ranges like 0-9, got {value!r}") \
                from None
        if last < first:
            raise SplitencUserError(f"{flag} {value} runs backwards (it selects nothing); "
                                    f"write {last}-{first}")
        out.extend(range(first, last + 1))
    return out


def _floats(values: Sequence[str] | None, flag: str) -> list[float] | None:
    values = _split(values)
    try:
        return None if values is None else [float(v) for v in values]
    except ValueError:
        raise SplitencUserError(f"{flag} takes numbers, got {values}") from None


class _SelectionParser(argparse.ArgumentParser):
    """Parses one line of a --selections file; errors raise instead of exiting."""

    def error(self, message: str):
        raise SplitencUserError(message)


def read_selections(path: str | os.PathLike) -> list[argparse.Namespace]:
    """The selections of a ``--selections`` file, validated line by line.

    Returns:
      One namespace per selection line: ``study``, the filter options and
      ``where`` (file and line, for error messages).

    Raises:
      SplitencUserError: If the file is missing, empty, or a line is not a
        valid selection (the message names the line).
    """
    parser = _SelectionParser(prog="selection", add_help=False)
    parser.add_argument("--study", required=True)
    add_selection_filters(parser)
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise SplitencUserError(f"cannot read --selections file {path}: {exc.strerror}") \
            from None
    selections = []
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}, line {number}"
        try:
            selections.append(parser.parse_args(shlex.split(line),
                                                argparse.Namespace(where=where)))
        except (SplitencUserError, ValueError) as exc:
            hint = "" if "unrecognized arguments" not in str(exc) else (
                " (a line holds --study and the selection filters, "
                f"{', '.join(SELECTION_FILTERS.values())}; --steps, --gin_bindings and the "
                "execution options go on the command line, for every line)")
            raise SplitencUserError(f"{where}: {exc}{hint}") from None
    if not selections:
        raise SplitencUserError(f"--selections file {path} has no selection lines")
    return selections


# --------------------------------------------------------------------------
# Jobs of a selection
# --------------------------------------------------------------------------
def plan_jobs(study: str, output_directory: str | os.PathLike, *, steps: int,
              datasets: Sequence[str] | None = None, models: Sequence[str] | None = None,
              encoders: Sequence[str] | None = None, sigmas: Sequence[float] | None = None,
              seeds: Sequence[int] | None = None, model_nums: Sequence[int] | None = None,
              wheres: Sequence[str] = (), gin_configs: Sequence[str] = (),
              metrics: Sequence[str] | None = None,
              gin_bindings: Sequence[str] = (), visualize: bool = False,
              prune_heavy: bool = False) -> list[Job]:
    """The jobs of a study slice, validated.

    Args:
      study: Study name.
      output_directory: Jobs go to ``<output_directory>/<study>/<model_num>``.
      steps: ``model.training_steps`` of every job (>= 1).
      datasets, models, encoders, sigmas, seeds: Keep only models with these
        grid values (None: all). ``datasets=["dummy_data"]`` (tests and smoke
        runs only) selects the study's first dataset's models and trains them
        on dlib's in-memory dummy data instead.
      model_nums: Keep only these model numbers (None: all).
      wheres: ``--where`` bindings every kept model's own bindings include.
      gin_configs: Fragments layered over each model's training config
        (:mod:`splitenc_plugin.studies.dlib_any`); such jobs go to
        ``<output_directory>/<study>+<fragment names>/<model_num>``.
      metrics: The metrics to evaluate, by config name (None: all of the
        study's); the kept ones get the seeds of the full run.
      gin_bindings: Extra bindings for every job (part of its identity).
      visualize: Also run dlib's visualize_model in each job.
      prune_heavy: Delete checkpoints and TF-Hub modules of finished jobs.

    Returns:
      The selected jobs, in model_num order.

    Raises:
      SplitencUserError: For any invalid input or an empty selection.
    """
    if not isinstance(steps, int) or steps < 1:
        raise SplitencUserError(f"--steps must be a positive integer, got {steps!r}")
    if not is_plugin_grid(study):
        specs = _dlib_study_specs(study, steps=steps, datasets=datasets, models=models,
                                  encoders=encoders, sigmas=sigmas, seeds=seeds,
                                  model_nums=model_nums, wheres=wheres,
                                  gin_configs=gin_configs, metrics=metrics,
                                  gin_bindings=gin_bindings)
    else:
        specs = _grid_specs(study, steps=steps, datasets=datasets, models=models,
                            encoders=encoders, sigmas=sigmas, seeds=seeds,
                            model_nums=model_nums, wheres=wheres, gin_configs=gin_configs,
                            metrics=metrics, gin_bindings=gin_bindings)
    out = Path(output_directory) / study_directory(study, gin_configs)
    return [Job(spec, out / str(spec.model_num), visualize, prune_heavy) for spec in specs]


def study_directory(study: str, gin_configs: Sequence[str] = ()) -> str:
    """A study run's directory name: the study, ``+`` each layered fragment's name.

    ``unsupervised_study_v1`` plain and with ``split_encoder.gin`` live side by
    side as ``unsupervised_study_v1/`` and ``unsupervised_study_v1+split_encoder/``,
    with the same model numbers below each, so one output directory holds both
    and the aggregator pairs them.
    """
    return "+".join([study, *(Path(p).name.removesuffix(".gin") for p in gin_configs)])


def _grid_specs(study: str, *, steps: int, datasets, models, encoders, sigmas, seeds,
                model_nums, wheres, gin_configs, metrics, gin_bindings) -> list[JobSpec]:
    """A plugin study's selected jobs (its grid's axis filters, fast, no dlib import)."""
    grid = get_grid(study)
    check_extra_bindings(gin_bindings)
    metrics = restrict_metrics(study, EVAL_CONFIGS, metrics) or None  # before any selection
    override = None
    if datasets is not None and TEST_DATASET in datasets:
        if len(set(datasets)) > 1:
            raise SplitencUserError(
                f"--datasets {TEST_DATASET} (test data) cannot be combined with other datasets")
        override, datasets = TEST_DATASET, [grid.axes["dataset"][0]]
    specs = grid.select(dataset=datasets, model=models, encoder=encoders, sigma=sigmas,
                        seed=seeds)
    if model_nums is not None:
        bad = sorted(set(model_nums) - set(range(len(grid))))
        if bad:
            raise SplitencUserError(f"{study} has models 0..{len(grid) - 1}, not {bad}")
        specs = [s for s in specs if s.model_num in set(model_nums)]
    jobs = with_fragments([make_job_spec(study, s.model_num, steps, override,
                                         tuple(gin_bindings), metrics) for s in specs],
                          gin_configs)
    filters = parse_where(wheres)
    jobs = [spec for spec in jobs if matches_where(spec, filters)]
    if not jobs:
        raise SplitencUserError(
            f"the selection matches none of the {len(grid)} models of {study}; "
            "check --datasets/--models/--encoders/--sigmas/--seeds/--model_nums/--where")
    return jobs


def _dlib_study_specs(study: str, *, steps: int, datasets, models, encoders, sigmas, seeds,
                      model_nums, wheres, gin_configs, metrics,
                      gin_bindings) -> list[JobSpec]:
    """A registered dlib study's selected jobs (dlib's own or a user's; imports dlib)."""
    get_study(study)  # an unknown name is the first error, naming the registered studies
    grid_only = {"--models": models, "--encoders": encoders, "--sigmas": sigmas,
                 "--seeds": seeds}
    given = [flag for flag, value in grid_only.items() if value is not None]
    if given:
        raise SplitencUserError(
            f"{', '.join(given)} filter the plugin's grids; select a dlib study's models with "
            "--model_nums and --where (e.g. --where \"model.random_seed = 0\")")
    override = None
    if datasets is not None:
        if set(datasets) != {TEST_DATASET}:
            raise SplitencUserError(
                f"--datasets on a dlib study only takes {TEST_DATASET} (tests and smoke runs); "
                "select its datasets with --where \"dataset.name = 'dsprites_full'\"")
        override = TEST_DATASET
    check_extra_bindings(gin_bindings, DLIB_STUDY_BINDINGS)
    specs = study_job_specs(study, steps=steps, model_nums=model_nums, where=wheres,
                            gin_configs=gin_configs, extra_bindings=gin_bindings,
                            metrics=metrics, dataset=override)
    if not specs:
        raise SplitencUserError(f"the selection matches none of {study}'s models; check "
                                "--model_nums and --where")
    return specs


def plan_selections(selections: Sequence[argparse.Namespace],
                    output_directory: str | os.PathLike, *, steps: int,
                    gin_bindings: Sequence[str] = (), visualize: bool = False,
                    prune_heavy: bool = False) -> tuple[list[Job], dict[str, int]]:
    """The jobs of several selections (:func:`read_selections`), as one queue.

    Args:
      selections: Namespaces with ``study`` and the filter options.
      output_directory, steps, gin_bindings, visualize, prune_heavy: As in
        :func:`plan_jobs`, for every selection.

    Returns:
      (the jobs in selection order, each named once; each job's rank: the
      index of the first selection that names it).

    Raises:
      SplitencUserError: For an invalid selection (naming its file line), or
        two selections naming one job directory with different identities
        (e.g. other ``--metrics`` or fragments of the same file name): one
        directory holds one job, and the later selection would be dropped.
    """
    jobs, rank = [], {}
    first: dict[str, tuple[Job, str]] = {}  # key -> (the job, which selection named it)
    for index, sel in enumerate(selections):
        named = getattr(sel, "where", None) or f"selection {index + 1}"
        try:
            planned = plan_jobs(
                sel.study, output_directory, steps=steps,
                datasets=_split(sel.datasets), models=_split(sel.models),
                encoders=_split(sel.encoders), sigmas=_floats(sel.sigmas, "--sigmas"),
                seeds=_ints(sel.seeds, "--seeds"),
                model_nums=_ints(sel.model_nums, "--model_nums"),
                wheres=sel.wheres or (), gin_configs=sel.gin_configs or (),
                metrics=_split(sel.metrics),
                gin_bindings=gin_bindings, visualize=visualize, prune_heavy=prune_heavy)
        except SplitencUserError as exc:
            where = getattr(sel, "where", None)
            raise (SplitencUserError(f"{where}: {exc}") if where else exc) from None
        for job in planned:
            if job.key not in rank:
                rank[job.key] = index
                jobs.append(job)
                first[job.key] = (job, named)
            elif first[job.key][0].spec.identity() != job.spec.identity():
                raise SplitencUserError(
                    f"{_both(first[job.key][1], named)} name {job.job_dir} as different jobs "
                    "(identities differ: e.g. --metrics or a fragment's content); one "
                    "directory holds one job: drop one of the lines, or run them with "
                    "different --output_directory values")
    return jobs, rank


def _both(first: str, second: str) -> str:
    """'grid.txt, lines 1 and 2' for two lines of one file, else 'A and B'."""
    (file_a, _, line_a), (file_b, _, line_b) = (w.rpartition(", line ") for w in (first, second))
    return f"{file_a}, lines {line_a} and {line_b}" if file_a and file_a == file_b else \
        f"{first} and {second}"


# --------------------------------------------------------------------------
# Where a job stands
# --------------------------------------------------------------------------
def resume_step(job: Job) -> int | None:
    """The checkpoint step an unfinished job would resume from (None: from scratch).

    Only a directory started with this job's identity resumes.

    Raises:
      MarkerError: If the directory's ``job.json`` is unreadable or of another
        schema (its checkpoint is never deleted on a guess).
    """
    started = read_job_spec(job.job_dir)
    if started is None or started.identity() != job.spec.identity():
        return None
    return resumable_step(job.job_dir)


def _difference(key: str, finished, asked) -> str:
    if key == "bindings" and isinstance(finished, list):
        only_done = [b for b in finished if b not in asked]
        only_asked = [b for b in asked if b not in finished]
        return f"bindings: finished has {only_done}, asked has {only_asked}"
    return f"{key}: finished {finished!r}, asked {asked!r}"


def _classify(job: Job) -> tuple[JobState, dict | None]:
    """:func:`classify`, and the job's ``done.json`` content if it is finished."""
    try:
        done = read_done(job.job_dir)
        step = resume_step(job) if done is None else None
    except MarkerError as exc:
        return JobState(job, JobStatus.UNREADABLE, problem=str(exc)), None
    if done is None:
        status = JobStatus.TO_RUN if step is None else JobStatus.RESUMABLE
        return JobState(job, status, resume_step=step), None
    identity = job.spec.identity()
    if done["identity"] != identity:
        diffs = [_difference(k, done["identity"].get(k), v)
                 for k, v in identity.items() if done["identity"].get(k) != v]
        return JobState(job, JobStatus.IN_THE_WAY,
                        problem=f"{job.job_dir} ({'; '.join(diffs)})"), done
    return JobState(job, JobStatus.FINISHED), done


def classify(job: Job) -> JobState:
    """Where a job stands by its directory's markers alone (no lock, data or result checks).

    Returns:
      A state whose status is FINISHED (``done.json`` of this identity),
      IN_THE_WAY (``done.json`` of another identity; ``problem`` lists the
      differences), UNREADABLE (a marker that cannot be read; ``problem`` is
      its error), RESUMABLE (with ``resume_step``) or TO_RUN.
    """
    return _classify(job)[0]


def is_finished(job_dir: str | os.PathLike) -> bool:
    """Whether the job has a readable completion marker (a broken one is not finished)."""
    try:
        return read_done(job_dir) is not None
    except MarkerError:
        return False


def current_data(jobs: Iterable[Job]) -> dict[str, dict]:
    """The identity of each selected dataset that is present now (absent ones are left out).

    A dataset that is not there cannot be compared with what finished jobs
    trained on; the runner then trains nothing on it either
    (:func:`check_datasets`).
    """
    from splitenc_plugin.data import fingerprint, registry

    return {dataset: fingerprint.data_identity(dataset)
            for dataset in sorted({job.spec.dataset for job in jobs})
            if registry.check_dataset(dataset).ok}


def check_finished(jobs: Iterable[Job], data: dict[str, dict] | None = None
                   ) -> tuple[list[Job], list[Job]]:
    """Splits jobs into (finished, to run); refuses anything it must not overwrite.

    Args:
      jobs: The planned jobs.
      data: Dataset name -> its current identity (:func:`current_data`); a
        finished job counts only if it recorded the same data. None, or a
        dataset missing from it, skips that comparison.

    Raises:
      JobMismatchError: If a job directory holds a finished job whose identity
        differs, a finished job made on other data, a finished job whose result
        files are missing, a checkpoint of this job trained on other data, or
        a ``done.json``/``job.json``/``data.json`` that cannot be read (never
        taken for "not finished": the runner would delete it).
    """
    finished, pending, problems = [], [], []
    for job in jobs:
        state = _finished_state(job, data)
        if state.status is JobStatus.FINISHED:
            finished.append(job)
        elif state.status in (JobStatus.IN_THE_WAY, JobStatus.UNREADABLE):
            problems.append(state.problem)
        else:
            pending.append(job)
    if problems:
        shown = "\n  ".join(problems[:5]) + (
            f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise JobMismatchError(
            f"{len(problems)} job director(ies) in the output directory do not match this run "
            f"and are never overwritten or deleted:\n  {shown}\nUse another "
            "--output_directory, the --steps/--gin_bindings/--datasets and the data of the run "
            "that made them, or repair the files named.")
    return finished, pending


def _finished_state(job: Job, data: dict[str, dict] | None) -> JobState:
    """:func:`classify`, where a finished job must also have this data and its results.

    And a resumable one must have started on this data: its checkpoint has
    seen the data it started on (the job itself would refuse it, later).
    """
    from splitenc_plugin.data.fingerprint import recorded_identity, same_data

    state, done = _classify(job)
    if state.status is JobStatus.RESUMABLE:
        return _resumable_state(state, (data or {}).get(job.spec.dataset))
    if state.status is not JobStatus.FINISHED:
        return state
    recorded, now = recorded_identity(done), (data or {}).get(job.spec.dataset)
    if now is not None and not same_data(recorded, now):
        return JobState(job, JobStatus.IN_THE_WAY,
                        problem=f"{job.job_dir} was trained on {recorded['label']}, the data is "
                                f"now {now['label']}")
    missing = [f for f in done.get("results", []) if not (job.job_dir / f).is_file()]
    if missing:
        return JobState(job, JobStatus.IN_THE_WAY,
                        problem=f"{job.job_dir} has {DONE_FILE} but lacks {', '.join(missing)}")
    for result in done.get("results", []):
        try:
            read_result(job.job_dir / result)
        except ResultFileError as exc:
            return JobState(job, JobStatus.UNREADABLE, problem=str(exc))
    return state


def _resumable_state(state: JobState, now: dict | None) -> JobState:
    """A resumable job's state: IN_THE_WAY if it started on other data than
    ``now``, UNREADABLE if a record its resume reads cannot be read."""
    from splitenc_plugin.data.fingerprint import same_data

    job = state.job
    try:
        started = read_record(job.job_dir / DATA_FILE)
        read_record(job.job_dir / RESUMES_FILE)  # its attempts, carried into done.json
    except MarkerError as exc:
        return JobState(job, JobStatus.UNREADABLE, problem=str(exc))
    if now is None or started is None or same_data(started, now):
        return state
    return JobState(job, JobStatus.IN_THE_WAY,
                    problem=f"{job.job_dir} started training on {started.get('label')} (its "
                            f"checkpoint at step {state.resume_step} has seen that data), the "
                            f"data is now {now['label']}: restore that data, or move the "
                            "directory away to train the job anew")


def check_datasets(jobs: Iterable[Job]) -> None:
    """Raises one clear error if a selected dataset's files are missing."""
    from splitenc_plugin.data import registry

    for dataset in sorted({job.spec.dataset for job in jobs}):
        registry.require_dataset(dataset)


def plan_run(jobs: Sequence[Job], rank: Mapping[str, int] | None = None, *,
             max_jobs: int | None = None, data: dict[str, dict] | None = None) -> RunPlan:
    """Where every job of a run stands, and which jobs it starts in which order.

    Args:
      jobs: The planned jobs, in selection order.
      rank: Each job's selection rank (:func:`plan_selections`); None: one selection.
      max_jobs: Start at most this many of the unfinished jobs (the rest are
        LATER); jobs running in another process take no slot.
      data: As in :func:`check_finished`.

    Raises:
      JobMismatchError: As :func:`check_finished` (before any state is taken).
      MarkerError: If a ``job.json`` became unreadable since.
    """
    rank = rank or {}
    finished, pending = check_finished(jobs, data)
    # Jobs another runner is running are left alone and take no --max_jobs slot,
    # so a second runner can fill an idle core with the next job.
    running = [job for job in pending if held_elsewhere(job.job_dir)]
    pending = [job for job in pending if job not in running]
    # A selections file's order is the user's priority, so it comes first: a
    # later line's checkpoint must not take the cores from an earlier line's jobs.
    # Within a selection, jobs that can resume go first: their compute is partly spent.
    resume = {job.key: resume_step(job) for job in pending}
    pending.sort(key=lambda job: (rank.get(job.key, 0), resume[job.key] is None,
                                  job.spec.model_num))
    start = pending[:max_jobs] if max_jobs is not None else pending
    starting = {job.key for job in start}
    states = {job.key: JobState(job, JobStatus.FINISHED) for job in finished}
    states.update({job.key: JobState(job, JobStatus.RUNNING) for job in running})
    for job in pending:
        step = resume[job.key]
        status = JobStatus.LATER if job.key not in starting else \
            JobStatus.TO_RUN if step is None else JobStatus.RESUMABLE
        states[job.key] = JobState(job, status, resume_step=step)
    return RunPlan(states=tuple(states[job.key] for job in jobs), queue=tuple(start))
