"""One job of a study: train -> (visualize) -> postprocess -> evaluate, in one process.

``python -m splitenc_plugin.sweep.job JOB_DIR`` runs the job described by
``JOB_DIR/job.json`` (a :class:`~splitenc_plugin.studies.grid.JobSpec` plus
options, written by the runner) with dlib's Python API, in the order of dlib's
``dlib_reproduce`` and with its seeding scheme (one ``RandomState(0)`` master
state, one draw per step). Unlike ``dlib_reproduce``, configs are ordered by
name, not by file path (so that the seeds do not depend on where dlib and the
plugin are installed), and only the pairs of
:func:`~splitenc_plugin.studies.grid.evaluation_pairs` draw a seed (a
``--metrics`` restriction skips pairs after drawing their seeds); the seeds
are :meth:`~splitenc_plugin.studies.grid.JobSpec.pipeline_seeds`:

1. ``train.train_with_gin(JOB_DIR/model, False, [config], bindings)``, then
   ``JOB_DIR/model/learning_curves.json`` from its training summaries
   (:mod:`splitenc_plugin.results.learning_curves`; a warning, not a failure, if none);
2. (``--visualize``) ``visualize_model.visualize(JOB_DIR/model, JOB_DIR/visualizations)``,
   then still traversals over each latent's fitted ±2σ range into
   ``JOB_DIR/visualizations/traversals_fitted`` (:mod:`splitenc_plugin.results.traversals`);
3. for each postprocess config (by name), ``postprocess_with_gin`` into
   ``JOB_DIR/postprocessed/<name>`` with ``postprocess.random_seed`` drawn from
   ``np.random.RandomState(0)``;
4. for each meaningful (representation, metric) pair, ``evaluate_with_gin`` into
   ``JOB_DIR/metrics/<rep>/<metric>`` with the next seeds of the same state.

The layout is dlib_reproduce's, so ``dlib_aggregate_results`` works on it too.

While it runs, the job keeps ``JOB_DIR/progress.json`` current (phase, global
step, recent step times, attempt, pid; the schema is
:class:`splitenc_plugin.sweep.progress.Progress`): that file, not ``job.log``, is
what the runner reads for its progress bar and time estimates. ``job.log``
is for humans.

An interrupted job resumes training from its newest checkpoint (the estimator
saves one every 10 minutes): the job keeps it in ``JOB_DIR/resume_checkpoint``,
clears its other outputs and lets dlib's ``train`` run again with
``max_steps`` in place of ``steps``, so training continues up to the job's
step count (a fresh job trains exactly as with ``steps``). A resumed model is
not bit-identical to an uninterrupted one: the input pipeline and TF's random
ops restart from their seeds. The interrupted attempt's training summaries
(event files) are kept in ``JOB_DIR/attempt_events/<step>``, ``<step>`` being
the step the next attempt resumed from, so that the learning curves cover the
whole training (:mod:`splitenc_plugin.results.learning_curves`).
``resumes.json`` and ``done.json`` record the steps it resumed from, and each
attempt's oneDNN state (``onednn_by_attempt``: kernels may differ between
attempts run under other settings or CPUs).
Postprocessing and evaluation always run from scratch.

When everything succeeded, the completion marker ``JOB_DIR/done.json`` is
written atomically; with ``prune_heavy`` the checkpoints, TF-Hub modules and
event files it lists as ``pruned`` are deleted only after it (a job killed
in between is finished, with heavy files left; one whose learning curves
failed is not pruned: its event files are their only source). A job
directory is *finished* if and only if it has a valid ``done.json``; its
identity (study, model_num, config, bindings, steps, and any fragments and
``--metrics``: ``JobSpec.identity``) says what it computed. Importing this
module does not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from splitenc_plugin._io import write_json_atomic
from splitenc_plugin.compat import deterministic_mode, instrument_estimator_train
from splitenc_plugin.compat.runtime import onednn_enabled
from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.results.learning_curves import EVENT_GLOB, write_learning_curves
from splitenc_plugin.studies.grid import (
    JobSpec,
    config_file,
    config_name,
)
from splitenc_plugin.sweep.job_files import (
    ATTEMPT_EVENTS_DIR,
    CHECKPOINT_DIR,
    DATA_FILE,
    DONE_FILE,
    HEAVY_PATTERNS,
    JOB_FILE,
    LOG_FILE,
    RESUME_DIR,
    RESUMES_FILE,
    MarkerError,
    checkpoint_step,
    read_done,
    read_record,
    result_files,
)
from splitenc_plugin.sweep.progress import ProgressWriter

__all__ = ["THREAD_ENV", "attempt_events", "heavy_paths", "main", "prepare_resume",
           "prune_heavy"]

# What a resumed job keeps of its directory; everything else is redone.
_KEPT = (JOB_FILE, LOG_FILE, RESUMES_FILE, RESUME_DIR, DATA_FILE, ATTEMPT_EVENTS_DIR)
# Thread limits of a job (splitenc_reproduce --threads_per_job): read by
# TensorFlow's intra-op and inter-op thread pools and by OpenMP.
THREAD_ENV = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def heavy_paths(job_dir: str | os.PathLike) -> list[str]:
    """What :func:`prune_heavy` deletes in a job (see HEAVY_PATTERNS), relative to it."""
    job_dir = Path(job_dir)
    return [str(path.relative_to(job_dir))
            for pattern in HEAVY_PATTERNS for path in sorted(job_dir.glob(pattern))]


def prune_heavy(job_dir: str | os.PathLike, paths: list[str] | None = None) -> list[str]:
    """Deletes checkpoints, TF-Hub modules and GIFs of a job (see HEAVY_PATTERNS).

    Args:
      job_dir: The job directory.
      paths: What to delete (:func:`heavy_paths`, listed earlier, e.g. in the
        job's ``done.json``); None: what is there now.

    Returns:
      The deleted paths, relative to the job directory (those already gone
      included: a prune interrupted and done again).
    """
    job_dir = Path(job_dir)
    paths = heavy_paths(job_dir) if paths is None else paths
    for relative in paths:
        path = job_dir / relative
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return paths


def _copy_checkpoint(source: Path, step: int, destination: Path) -> None:
    """Copies checkpoint ``step`` of ``source`` into ``destination`` with a fresh state file."""
    destination.mkdir(parents=True, exist_ok=True)
    for path in source.glob(f"model.ckpt-{step}.*"):
        shutil.copy2(path, destination / path.name)
    # TF's CheckpointState text format, with a path relative to the directory.
    (destination / "checkpoint").write_text(
        f'model_checkpoint_path: "model.ckpt-{step}"\n'
        f'all_model_checkpoint_paths: "model.ckpt-{step}"\n')


def _keep_attempt_events(job_dir: Path, until: int) -> None:
    """Copies the interrupted attempt's event files into ``ATTEMPT_EVENTS_DIR/<until>``.

    Nothing is copied if that directory exists: either these very files were
    kept before (a crash after copying, before the outputs were cleared), or
    an earlier attempt was kept up to the same step, and then this attempt
    saved no checkpoint of its own and none of its summaries count.

    Args:
      job_dir: The job directory.
      until: The step the next attempt resumes from: the attempt's summaries
        after it describe training the resumed model does not carry.
    """
    events = sorted((job_dir / CHECKPOINT_DIR).glob(EVENT_GLOB))
    kept = job_dir / ATTEMPT_EVENTS_DIR / str(until)
    if not events or kept.exists():
        return
    fresh = kept.with_name(f"{until}.new")  # renamed when complete
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    for path in events:
        shutil.copy2(path, fresh / path.name)
    fresh.rename(kept)


def attempt_events(job_dir: str | os.PathLike) -> list[tuple[Path, int]]:
    """The event directories of a job's interrupted attempts, kept when it resumed.

    Args:
      job_dir: The job directory.

    Returns:
      (directory, the step up to which its summaries count), in the order of
      the attempts (by that step), as
      :func:`~splitenc_plugin.results.learning_curves.read_learning_curves`
      takes them; empty for a job never resumed.
    """
    kept = [(int(d.name), d) for d in (Path(job_dir) / ATTEMPT_EVENTS_DIR).glob("*")
            if d.name.isdigit()]  # not a half-copied "<step>.new"
    return [(directory, step) for step, directory in sorted(kept)]


def prepare_resume(job_dir: str | os.PathLike) -> int | None:
    """Keeps the newest checkpoint in RESUME_DIR and clears the job's other outputs.

    Copies (never moves) until the new RESUME_DIR is in place, so a crash at
    any point leaves a complete checkpoint for the next attempt. The
    interrupted attempt's event files are kept too, in
    ``ATTEMPT_EVENTS_DIR/<the step returned>`` (:func:`attempt_events`); a job
    that starts afresh drops earlier attempts' ones.

    Args:
      job_dir: An unfinished job directory.

    Returns:
      The step training resumes from, or None if there is no checkpoint.
    """
    job_dir = Path(job_dir)
    live, stash = job_dir / CHECKPOINT_DIR, job_dir / RESUME_DIR
    live_step, stash_step = checkpoint_step(live), checkpoint_step(stash)
    if live_step is not None and (stash_step is None or live_step > stash_step):
        fresh, old = job_dir / f"{RESUME_DIR}.new", job_dir / f"{RESUME_DIR}.old"
        for path in (fresh, old):
            shutil.rmtree(path, ignore_errors=True)
        _copy_checkpoint(live, live_step, fresh)
        if stash.exists():
            stash.rename(old)
        fresh.rename(stash)
        shutil.rmtree(old, ignore_errors=True)
        stash_step = live_step
    if stash_step is None:
        shutil.rmtree(job_dir / ATTEMPT_EVENTS_DIR, ignore_errors=True)
    else:
        _keep_attempt_events(job_dir, until=stash_step)
    for path in job_dir.iterdir():
        if path.name not in _KEPT:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return stash_step


def _read_attempts(job_dir: Path) -> dict:
    """``resumes.json``: ``{"first_attempt": record | None, "resumes": [record, ...]}``.

    A record says when an attempt started and what it ran under
    (:func:`_attempt_record`); a resume's also says the step it resumed from.
    Files written before first-attempt records existed have none.

    Raises:
      MarkerError: If the file exists but cannot be read as such (the
        attempts it records would be lost from ``done.json``).
    """
    path = job_dir / RESUMES_FILE
    record = read_record(path)
    if record is None:
        return {"first_attempt": None, "resumes": []}
    if not isinstance(record.get("resumes"), list):
        raise MarkerError(f"{path} has no 'resumes' list: restore it from the run that made "
                          "it, or move the job directory away to train the job anew")
    return {"first_attempt": record.get("first_attempt"), "resumes": record["resumes"]}


def _attempt_record() -> dict:
    """When this attempt started, and what it ran under that may differ between attempts."""
    return {"at": datetime.now(UTC).isoformat(timespec="seconds"),
            # Whether TF ran oneDNN kernels: not on every CPU by default, and other kernels.
            "onednn": onednn_enabled()}


def _onednn_by_attempt(attempts: dict) -> list[bool | None]:
    """Each attempt's oneDNN state, oldest first (None: not recorded)."""
    first = attempts["first_attempt"] or {}
    return [first.get("onednn"), *(r.get("onednn") for r in attempts["resumes"])]


def _log(message: str) -> None:
    print(f"[splitenc job {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _training_reporter(progress: ProgressWriter, total_steps: int,
                       reports: int = 100) -> Callable[[int], None]:
    """An ``on_step`` callback reporting ~``reports`` steps of training.

    Each report updates ``progress.json`` (the runner's progress bar and time
    estimates) and logs "train step N/total" for humans.
    """
    every = max(1, total_steps // reports)
    last = -1

    def on_step(step: int) -> None:
        nonlocal last
        if step // every != last:
            last = step // every
            progress.step(step)
            _log(f"train step {step}/{total_steps}")

    return on_step


def _check_data(job_dir: Path, dataset: str) -> dict:
    """The dataset's identity now; refuses to resume a job started on other data.

    Raises:
      SplitencUserError: If the job's first attempt started on data with
        another fingerprint (its checkpoint has seen that data).
      MarkerError: If its ``data.json`` exists but cannot be read (what the
        checkpoint has seen is unknown: never taken for "no record").
    """
    from splitenc_plugin.data.fingerprint import data_identity, same_data

    current = data_identity(dataset)
    started = read_record(job_dir / DATA_FILE)
    if started is not None and not same_data(started, current):
        raise SplitencUserError(
            f"{job_dir} started training on {started.get('label')} but the data is now "
            f"{current['label']}; its checkpoint has seen the other data. Restore that data, "
            "or move the job directory away to train the job anew")
    write_json_atomic(job_dir / DATA_FILE, current)
    return current


def _check_fragments(spec: JobSpec) -> None:
    """Refuses to train if a layered fragment changed since the job was planned.

    Raises:
      SplitencUserError: Naming the fragment (its content is part of the job's
        identity, so training it now would record one config and run another).
    """
    from splitenc_plugin.studies.dlib_any import file_digest

    for path, digest in zip(spec.gin_configs, spec.gin_config_digests):
        try:
            now = file_digest(path)
        except OSError as exc:
            raise SplitencUserError(f"the job's fragment {path} cannot be read ({exc}); "
                                    "restore it, or plan the job again") from None
        if now != digest:
            raise SplitencUserError(
                f"the job's fragment {path} changed since the job was planned; run "
                "splitenc_reproduce again to plan it with the current content")


def run(job_dir: str | os.PathLike) -> dict:
    """Runs the job in ``job_dir`` and writes its completion marker.

    Args:
      job_dir: A directory holding ``job.json`` and nothing else of the job's
        outputs (the runner empties unfinished job directories).

    Returns:
      The completion marker's content.
    """
    # dlib (and TensorFlow) only now: importing this module stays cheap.
    from disentanglement_lib.evaluation import evaluate
    from disentanglement_lib.methods.unsupervised import train
    from disentanglement_lib.postprocessing import postprocess


    job_dir = Path(job_dir)
    with open(job_dir / JOB_FILE) as f:
        job = json.load(f)
    spec = JobSpec.from_dict(job["spec"])
    _check_fragments(spec)
    data = _check_data(job_dir, spec.dataset)
    attempts = _read_attempts(job_dir)
    resumes = attempts["resumes"]
    resume_step = prepare_resume(job_dir)
    if resume_step is None:
        attempts["first_attempt"] = _attempt_record()  # training starts from scratch
    else:
        resumes.append({"step": resume_step, **_attempt_record()})
    write_json_atomic(job_dir / RESUMES_FILE, attempts)
    progress = ProgressWriter(job_dir, spec.steps, attempt=len(resumes) + 1, step=resume_step)

    def resume_into(model_dir: str) -> None:
        _copy_checkpoint(job_dir / RESUME_DIR, resume_step, Path(model_dir))
        _log(f"resuming training from the checkpoint at step {resume_step}/{spec.steps}")

    # dlib's train: max_steps in place of steps, from the kept checkpoint, with reports.
    instrument_estimator_train(before_train=None if resume_step is None else resume_into,
                               on_step=_training_reporter(progress, spec.steps))
    options = job.get("options", {})
    timings: dict[str, float] = {}
    start = time.time()

    model_dir = str(job_dir / "model")
    model_config = spec.config_path()
    bindings = spec.training_bindings()
    _log(f"{spec.study} model {spec.model_num}: training {spec.config} for {spec.steps} steps "
         f"with {bindings}")
    t = time.time()
    train.train_with_gin(model_dir, False, [model_config], bindings)
    timings["train"] = time.time() - t
    shutil.rmtree(job_dir / RESUME_DIR, ignore_errors=True)
    prunable = bool(options.get("prune_heavy"))
    try:  # from the training event files, which --prune_heavy deletes
        curves = write_learning_curves(model_dir, earlier=attempt_events(job_dir))
        _log(f"learning curves written to {curves.relative_to(job_dir)}" if curves else
             f"warning: no training summaries in {CHECKPOINT_DIR}; learning curves not written")
    except Exception as exc:  # noqa: BLE001 - an extra file must not cost the trained model
        _log(f"warning: learning curves not written ({type(exc).__name__}: {exc})")
        if prunable:  # the event files are their only source: keep them
            prunable = False
            _log("not pruning (--prune_heavy): the event files in "
                 f"{CHECKPOINT_DIR} and {ATTEMPT_EVENTS_DIR} are the learning curves' only "
                 "source")

    if options.get("visualize"):
        from disentanglement_lib.visualize import visualize_model

        from splitenc_plugin.results.traversals import (
            FITTED_DIR,
            visualize_fitted_traversals,
        )

        progress.phase("visualize")
        _log("visualizing the model (dlib visualize_model)")
        t = time.time()
        visualize_model.visualize(model_dir, str(job_dir / "visualizations"), False)
        _log("visualizing the model (traversals over each latent's fitted ±2σ range)")
        try:
            visualize_fitted_traversals(model_dir, job_dir / "visualizations" / FITTED_DIR)
        except Exception as exc:  # noqa: BLE001 - an extra picture must not cost the trained model
            _log(f"warning: fitted traversals not written ({type(exc).__name__}: {exc}); "
                 "dlib's own visualizations are complete")
        timings["visualize"] = time.time() - t

    # As dlib_reproduce: one master seed for postprocessing and evaluation.
    postprocess_seeds, evaluation_seeds = spec.pipeline_seeds()
    t = time.time()
    for config, seed in postprocess_seeds:
        post_name = config_name(config)
        progress.phase("postprocess", post_name)
        _log(f"extracting representation {post_name}")
        postprocess.postprocess_with_gin(
            model_dir, str(job_dir / "postprocessed" / post_name), False, [config_file(config)],
            [f"postprocess.random_seed = {seed}", f"postprocess.name = '{post_name}'"])
    timings["postprocess"] = time.time() - t

    t = time.time()
    for post, metric_config, seed in evaluation_seeds:
        post_name, metric = config_name(post), config_name(metric_config)
        progress.phase("evaluate", f"{post_name}/{metric}")
        _log(f"computing metric {metric} on {post_name}")
        evaluate.evaluate_with_gin(
            str(job_dir / "postprocessed" / post_name),
            str(job_dir / "metrics" / post_name / metric), False, [config_file(metric_config)],
            [f"evaluation.random_seed = {seed}", f"evaluation.name = '{metric}'"])
    timings["evaluate"] = time.time() - t

    results = result_files(job_dir, spec)
    missing = [str(p) for p in results if not p.is_file()]
    if missing:
        raise RuntimeError(f"dlib finished without writing {missing}")
    # Listed now, deleted after done.json is written: killed in between, the
    # job is finished with heavy files left over, not unfinished (which the
    # runner would clear and train again) with its checkpoints gone.
    pruned = heavy_paths(job_dir) if prunable else []

    from splitenc_plugin import __version__

    onednn_by_attempt = _onednn_by_attempt(attempts)
    done = {
        "identity": spec.identity(),
        "spec": spec.to_dict(),
        "options": options,
        "status": "done",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "elapsed_seconds": round(time.time() - start, 3),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "pruned": pruned,
        "resumed_from_steps": [r["step"] for r in resumes],
        # What it trained on: compared by the runner, split on by the aggregator.
        "data": data,
        # Thread limits the job ran under (splitenc_reproduce --threads_per_job).
        "thread_env": {name: os.environ.get(name) for name in THREAD_ENV},
        # Deterministic mode (SPLITENC_DETERMINISTIC, splitenc_reproduce --deterministic).
        "deterministic": deterministic_mode(),
        # Whether TF ran oneDNN kernels: this attempt (the last record), and every attempt.
        "onednn": onednn_by_attempt[-1],
        "onednn_by_attempt": onednn_by_attempt,
        "splitenc_version": __version__,
        "results": [str(p.relative_to(job_dir)) for p in results],
    }
    progress.phase("done")
    write_json_atomic(job_dir / DONE_FILE, done)
    if pruned:
        prune_heavy(job_dir, pruned)
        _log(f"pruned {', '.join(pruned)}")
    _log(f"done in {done['elapsed_seconds']:.1f} s")
    return done


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m splitenc_plugin.sweep.job JOB_DIR``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m splitenc_plugin.sweep.job JOB_DIR", file=sys.stderr)
        return 2
    job_dir = Path(argv[0])
    try:
        if read_done(job_dir) is not None:
            print(f"{job_dir} is already finished ({DONE_FILE} exists); not touching it",
                  file=sys.stderr)
            return 0
        run(job_dir)
    except SplitencUserError as exc:
        print(f"splitenc job: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
