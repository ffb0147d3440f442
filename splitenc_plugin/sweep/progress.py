"""The job protocol: what a running job tells its runner, in ``JOB_DIR/progress.json``.

A job (:mod:`splitenc_plugin.sweep.job`) keeps one small JSON file current while it
runs, always replaced atomically; the runner (:mod:`splitenc_plugin.sweep.display`)
reads that file, and only that file, for its progress bar and for the dry
run's "running (train N/total, R steps/s, ~T left)". ``job.log`` is for
humans: its wording may change freely. :class:`Progress` is the schema, in
this one place::

    {
      "schema": 1,
      "phase": "train",          # one of PHASES
      "detail": "",              # e.g. "mean" (postprocess) or "mean/mig" (evaluate)
      "step": 4200,              # newest reported global step (null before the first)
      "total_steps": 100000,     # the job's model.training_steps
      "attempt": 2,              # 1, then +1 for every resume from a checkpoint
      "pid": 12345,              # the job process (on ``host``)
      "host": "node-3",
      "attempt_started_at": 1764400000.0,   # wall-clock (epoch) seconds
      "updated_at": 1764400420.5,
      "recent_steps": [[1764400300.1, 4000], [1764400420.5, 4200]]
    }

``recent_steps`` holds the newest :data:`RATE_WINDOW` ``[time, step]`` reports
of *this attempt* only (a resumed job starts a fresh list), so a rate never
mixes two processes. The file is advisory: it never decides whether a job is
finished (``done.json`` does), and an absent or unreadable one (a job started
by an older version) reads as "no progress known". Importing this module does
not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from splitenc_plugin._io import write_json_atomic

__all__ = ["PHASES", "PROGRESS_FILE", "RATE_WINDOW", "SCHEMA", "Progress", "ProgressWriter",
           "read_progress"]

PROGRESS_FILE = "progress.json"
SCHEMA = 1
#: A job's phases, in order.
PHASES = ("train", "visualize", "postprocess", "evaluate", "done")
#: Step reports kept in ``recent_steps``: the window of :meth:`Progress.rate`.
RATE_WINDOW = 10


@dataclass(frozen=True)
class Progress:
    """One snapshot of a running job (the content of ``progress.json``)."""

    phase: str
    total_steps: int
    attempt: int
    pid: int
    host: str
    attempt_started_at: float
    updated_at: float
    step: int | None = None
    detail: str = ""
    recent_steps: tuple[tuple[float, int], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r}; expected one of {PHASES}")

    def to_dict(self) -> dict:
        """The JSON object of ``progress.json``."""
        data = asdict(self)
        data["recent_steps"] = [list(report) for report in self.recent_steps]
        return {"schema": SCHEMA, **data}

    @classmethod
    def from_dict(cls, data: dict) -> Progress:
        """The snapshot of a ``progress.json`` object.

        Raises:
          ValueError: If it is not a progress record of this schema.
        """
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(f"not a progress record of schema {SCHEMA}")
        fields = {k: v for k, v in data.items() if k != "schema"}
        try:
            fields["recent_steps"] = tuple((float(t), int(s))
                                           for t, s in fields.get("recent_steps", ()))
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a progress record of schema {SCHEMA}: {exc}") from None

    def rate(self) -> float | None:
        """Global steps per second: the median over the intervals of ``recent_steps``.

        The median, not the whole window's mean, so that one stalled interval (a
        job paused with SIGSTOP for a benchmark, a moment of a busy machine) does
        not set the estimate for the next RATE_WINDOW reports. None with fewer
        than two reports, or if no interval advanced.
        """
        rates = [(s1 - s0) / (t1 - t0) for (t0, s0), (t1, s1)
                 in zip(self.recent_steps, self.recent_steps[1:]) if t1 > t0 and s1 > s0]
        return statistics.median(rates) if rates else None

    def seconds_left(self) -> float | None:
        """Estimated seconds of training left at :meth:`rate`; None if unknown or not training."""
        rate = self.rate()
        if self.phase != "train" or rate is None or self.step is None:
            return None
        return max(0, self.total_steps - self.step) / rate


def read_progress(job_dir: str | os.PathLike) -> Progress | None:
    """The job's progress, or None if it has no readable ``progress.json`` of this schema."""
    try:
        return Progress.from_dict(json.loads((Path(job_dir) / PROGRESS_FILE).read_text()))
    except (OSError, ValueError):
        return None


class ProgressWriter:
    """Keeps ``JOB_DIR/progress.json`` current for one attempt of a job (in the job process).

    Args:
      job_dir: The job's directory.
      total_steps: The job's training steps.
      attempt: 1 for a fresh job, n + 1 after its n-th resume.
      step: The global step the attempt starts from (a resume's checkpoint), if any.
      clock: Wall-clock seconds (tests pass their own).
    """

    def __init__(self, job_dir: str | os.PathLike, total_steps: int, attempt: int,
                 step: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self._path = Path(job_dir) / PROGRESS_FILE
        self._clock = clock
        now = clock()
        self._progress = Progress(phase="train", total_steps=total_steps, attempt=attempt,
                                  pid=os.getpid(), host=socket.gethostname(),
                                  attempt_started_at=now, updated_at=now, step=step)
        self._write()

    @property
    def progress(self) -> Progress:
        """The snapshot last written."""
        return self._progress

    def step(self, step: int) -> None:
        """Reports that training reached global ``step``."""
        now = self._clock()
        recent = (*self._progress.recent_steps, (now, int(step)))[-RATE_WINDOW:]
        self._update(step=int(step), recent_steps=recent, updated_at=now)

    def phase(self, phase: str, detail: str = "") -> None:
        """Reports that the job entered ``phase`` (one of :data:`PHASES`)."""
        self._update(phase=phase, detail=detail, updated_at=self._clock())

    def _update(self, **changes) -> None:
        self._progress = replace(self._progress, **changes)
        self._write()

    def _write(self) -> None:
        write_json_atomic(self._path, self._progress.to_dict())
