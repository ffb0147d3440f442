"""A job directory's files: their names, and the readers of its markers and results.

What the runner, the aggregator and the job itself agree on about
``DIR/<study>/<model_num>/`` (see :mod:`splitenc_plugin.sweep.job` for what
the job writes there, and when). Reading a job directory needs neither
TensorFlow nor the compat layer, so the aggregator imports this module, not
the job's.

* markers: ``job.json`` (the spec a job was started with) and ``done.json``
  (written last: a job is finished if and only if it has a valid one);
  :func:`read_job_spec`, :func:`read_done`, :class:`MarkerError`;
* dlib's result JSONs: :func:`result_files`, :func:`read_result`,
  :class:`ResultFileError`;
* checkpoints: :func:`checkpoint_step`, :func:`resumable_step`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.studies.grid import JobSpec, config_name

__all__ = [
    "ATTEMPT_EVENTS_DIR",
    "CHECKPOINT_DIR",
    "DATA_FILE",
    "DONE_FILE",
    "HEAVY_PATTERNS",
    "JOB_FILE",
    "LOG_FILE",
    "RESULT_FIX",
    "RESUMES_FILE",
    "RESUME_DIR",
    "MarkerError",
    "ResultFileError",
    "checkpoint_step",
    "metric_result",
    "read_done",
    "read_job_spec",
    "read_record",
    "read_result",
    "result_files",
    "resumable_step",
]

JOB_FILE = "job.json"
DONE_FILE = "done.json"
LOG_FILE = "job.log"
RESUMES_FILE = "resumes.json"
# The identity of the data the job's first attempt started on
# (splitenc_plugin.data.fingerprint); a resume on other data is refused.
DATA_FILE = "data.json"
# dlib's estimator directory, and where an interrupted attempt's newest
# checkpoint is kept while the job clears its outputs and starts over.
CHECKPOINT_DIR = "model/tf_checkpoint"
RESUME_DIR = "resume_checkpoint"
# The training summaries of interrupted attempts: <step>/ holds the event
# files of the attempt that a later one resumed from <step>; they count up
# to that step.
ATTEMPT_EVENTS_DIR = "attempt_events"
_CHECKPOINT_INDEX = re.compile(r"^model\.ckpt-(\d+)\.index$")

# What --prune_heavy deletes (globs relative to the job directory): the
# checkpoints, the TF-Hub modules, dlib's GIF animations and its 2 MB
# interventional-effects plot. What stays is what the aggregator reads:
# results/{json,gin,aggregate} of every step, the logs and markers, and the
# reconstructions, samples and traversals of visualizations/ (~0.3 MB) if any.
# The event files (tens of MB at 100,000 steps) go with the checkpoints; the
# learning curves were read from them into model/learning_curves.json.
HEAVY_PATTERNS = (
    "model/tf_checkpoint",
    ATTEMPT_EVENTS_DIR,
    "model/tfhub",
    "postprocessed/*/tfhub",
    "visualizations/animated_traversals",
    "visualizations/interventional_effects",
)


class MarkerError(SplitencUserError):
    """A job's ``done.json``, ``job.json`` or other record exists but cannot be read.

    The runner never deletes or reruns such a directory: it may hold finished
    results (a bad merge of a committed ``done.json``, a marker from another
    version). The message names the file and how to repair it.
    """


def read_record(path: str | os.PathLike, required: str | None = None) -> dict | None:
    """A job file's JSON object (``done.json``, ``job.json``, ``data.json``, ...).

    Args:
      path: The file.
      required: A key whose value must be an object (e.g. ``"identity"``).

    Returns:
      The object; None if the file does not exist.

    Raises:
      MarkerError: If it exists but is unreadable, not UTF-8 JSON, not an
        object, or lacks ``required`` — never taken for "absent".
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MarkerError(f"{path} cannot be read ({exc}); fix its permissions") from None
    try:
        data = json.loads(raw)  # bytes: bad UTF-8 is a ValueError here too
    except ValueError as exc:
        conflict = b"<<<<<<<" in raw or b">>>>>>>" in raw
        raise MarkerError(
            f"{path} is not valid JSON ({'it has merge-conflict markers' if conflict else exc})"
            f"; the job's results beside it are kept. Repair the file (e.g. `git checkout -- "
            f"{path}` or resolve the conflict), or move the job directory away to train the "
            "job anew") from None
    if not isinstance(data, dict) or (required is not None
                                      and not isinstance(data.get(required), dict)):
        what = "is not a JSON object" if required is None else f"has no '{required}' object"
        raise MarkerError(
            f"{path} {what}: it was written by another version of splitenc_plugin or edited "
            "by hand. Restore it from the run that made it, or move the job directory away to "
            "train the job anew")
    return data


def read_done(job_dir: str | os.PathLike) -> dict | None:
    """The job's completion marker, or None if the job has none (not finished).

    Raises:
      MarkerError: If ``done.json`` exists but is not a readable marker of this
        schema (never taken for "not finished": its results may be complete).
    """
    return read_record(Path(job_dir) / DONE_FILE, "identity")


def read_job_spec(job_dir: str | os.PathLike) -> JobSpec | None:
    """The spec an (unfinished) job directory was started with, or None if it has none.

    Raises:
      MarkerError: If ``job.json`` exists but does not hold a spec of this schema.
    """
    path = Path(job_dir) / JOB_FILE
    data = read_record(path, "spec")
    if data is None:
        return None
    try:
        return JobSpec.from_dict(data["spec"])
    except TypeError as exc:
        raise MarkerError(
            f"{path} holds a job spec of another schema ({exc}); its checkpoint is kept. "
            "Move the job directory away to train the job anew") from None


# How to repair a finished job whose result file is damaged or gone.
RESULT_FIX = ("restore it from the run that made it (e.g. `git checkout -- <file>` for a "
              "committed job), or move the job directory away and run the job again")


class ResultFileError(SplitencUserError):
    """A finished job's result JSON exists but cannot be read.

    Never taken for "absent" (the job would look unfinished, or its values
    NaN): the command stops and names the file.
    """


def read_result(path: str | os.PathLike, required: Sequence[str] = ()) -> dict:
    """One of dlib's result JSONs of a job (``results/aggregate/evaluation.json``).

    Args:
      path: The file.
      required: Keys it must have (``evaluation_results.discrete_mig``, ...).

    Raises:
      ResultFileError: If it cannot be read, is not a JSON object, or lacks
        a required key (the message names the file and the fix).
    """
    path = Path(path)
    fix = RESULT_FIX
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: JSON and Unicode errors
        raise ResultFileError(f"{path} cannot be read as dlib's result JSON ({exc}); {fix}") \
            from None
    if not isinstance(data, dict):
        raise ResultFileError(f"{path} is not a JSON object of dlib's results; {fix}")
    missing = [key for key in required if key not in data]
    if missing:
        raise ResultFileError(f"{path} lacks {', '.join(missing)}; {fix}")
    return data


def metric_result(job_dir: str | os.PathLike, representation: str, metric: str) -> Path:
    """Where dlib's evaluation of ``metric`` on ``representation`` writes its aggregate result.

    ``JOB_DIR/metrics/<representation>/<metric>/results/aggregate/evaluation.json``
    (dlib_reproduce's layout), e.g. ``metric_result(job, "mean", "mig")``.
    """
    return Path(job_dir) / "metrics" / representation / metric / "results" / "aggregate" \
        / "evaluation.json"


def result_files(job_dir: str | os.PathLike, spec: JobSpec) -> list[Path]:
    """The aggregate evaluation JSON of every (representation, metric) of the job."""
    return [metric_result(job_dir, config_name(post), config_name(metric))
            for post, metric, _ in spec.pipeline_seeds()[1]]


def checkpoint_step(directory: str | os.PathLike) -> int | None:
    """Global step of the newest complete TF checkpoint in ``directory``, or None.

    A checkpoint is complete once its ``.index`` is written (TF writes it
    after the data shards) and a data shard exists. TensorFlow-free.
    """
    directory = Path(directory)
    steps = [int(match.group(1)) for path in directory.glob("model.ckpt-*.index")
             if (match := _CHECKPOINT_INDEX.match(path.name))]
    complete = [step for step in steps if any(directory.glob(f"model.ckpt-{step}.data-*"))]
    return max(complete, default=None)


def resumable_step(job_dir: str | os.PathLike) -> int | None:
    """The step an unfinished job would resume training from, or None (start afresh)."""
    job_dir = Path(job_dir)
    steps = [checkpoint_step(job_dir / d) for d in (CHECKPOINT_DIR, RESUME_DIR)]
    return max((s for s in steps if s is not None), default=None)
