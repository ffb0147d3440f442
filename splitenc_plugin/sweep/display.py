"""What the runner shows about jobs while they run: progress texts and outcome lines.

Everything here about a running job comes from its ``progress.json``
(:mod:`splitenc_plugin.sweep.progress`), never from its log:
:func:`running_state` is the dry run's "running (train N/total, R steps/s,
~T left)", :func:`job_status` the progress bar's "20: train 40/100", and
:class:`ProgressWatcher` keeps the bar's postfix current. :func:`outcome_line`
is the line printed as each job ends, :func:`state_text` a job's state in
the dry run's plan.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from splitenc_plugin.sweep.execute import JobOutcome, RunStatus
from splitenc_plugin.sweep.plan import Job, JobState, JobStatus, is_finished
from splitenc_plugin.sweep.progress import Progress, read_progress

__all__ = ["ProgressWatcher", "job_status", "outcome_line", "running_state", "state_text"]


def _phase_text(progress: Progress) -> str:
    """'train 4200/100000', 'postprocess mean', 'evaluate mean/mig', ...: a job's phase."""
    if progress.phase == "train":
        return "train" if progress.step is None else \
            f"train {progress.step}/{progress.total_steps}"
    return f"{progress.phase} {progress.detail}".strip()


def running_state(job_dir: str | os.PathLike) -> str:
    """A running job's state for a dry run's plan, from its ``progress.json`` only.

    'running (train N/total, R steps/s, ~T left)' while it trains (rate and
    time left once it has reported twice in its current attempt), 'running
    (PHASE ...)' after; plain 'running' for a job that writes no progress file
    (one started by an older version).
    """
    progress = read_progress(job_dir)
    if progress is None:
        return "running"
    status = _phase_text(progress)
    rate, left = progress.rate(), progress.seconds_left()
    if rate is not None and left is not None:
        status += f", {rate:.1f} steps/s, ~{int(left // 3600)}h{int(left % 3600 // 60):02d}m left"
    return f"running ({status})"


def state_text(state: JobState) -> str:
    """A job's state as the dry run's plan shows it.

    'finished', 'to run', 'resume from N', 'later', or for a job running in
    another process :func:`running_state`'s text.
    """
    if state.status is JobStatus.RUNNING:
        return running_state(state.job.job_dir)
    if state.status is JobStatus.RESUMABLE:
        return f"resume from {state.resume_step}"
    return str(state.status)


def job_status(job: Job, since: float = 0.0) -> str | None:
    """A running job's short status for the progress bar ('20: train 40/100'), from ``progress.json``.

    None if the job has no progress file (not started, or started by an older
    version), or the file was last updated before ``since`` (epoch seconds): a
    queued job that an earlier run left half trained still has that run's
    progress, and is not running now.
    """
    progress = read_progress(job.job_dir)
    if progress is None or progress.updated_at < since:
        return None
    return f"{job.spec.model_num}: {_phase_text(progress)}"


class ProgressWatcher:
    """Shows what the running jobs are doing as a tqdm bar's postfix, every 2 s.

    A daemon thread, from :meth:`start` until :meth:`stop`; jobs named in
    :meth:`ended` (and jobs with a ``done.json``) are left out.
    """

    def __init__(self, bar, jobs: Sequence[Job], since: float) -> None:
        """Watches ``jobs`` on ``bar``; progress older than ``since`` (epoch s) is not shown."""
        self._bar, self._jobs, self._since = bar, list(jobs), since
        self._ended: set[str] = set()
        self._stop = threading.Event()

    def start(self) -> None:
        """Starts the watching thread."""
        threading.Thread(target=self._watch, daemon=True).start()

    def ended(self, key: str) -> None:
        """Stops showing job ``key`` (its outcome is in)."""
        self._ended.add(key)

    def stop(self) -> None:
        """Stops the watching thread (at its next round)."""
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(2.0):
            states = [s for job in self._jobs if job.key not in self._ended
                      and (s := job_status(job, self._since)) is not None
                      and not is_finished(job.job_dir)]
            self._bar.set_postfix_str(" | ".join(states[:4]), refresh=True)


def outcome_line(outcome: JobOutcome) -> str:
    """The line printed when a job's outcome comes in, e.g. 'finished: S/20 (31 s)'."""
    word = {RunStatus.DONE: "finished", RunStatus.SKIPPED: "already finished",
            RunStatus.BUSY: "BUSY, left alone"}.get(outcome.status, "FAILED")
    resumed = outcome.resumed_from
    return (f"{word}: {outcome.key} ({outcome.elapsed:.0f} s"
            + (f", resumed from step {resumed}" if resumed is not None else "") + ")"
            + (f"  log: {outcome.log}" if outcome.status is RunStatus.FAILED else "")
            + (f"  ({outcome.error})" if outcome.status is RunStatus.BUSY else ""))
