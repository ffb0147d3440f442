"""Reconstructions and traversals of finished jobs, for Appendix C (dlib's ``visualize_model``).

:func:`visualizations` finds each job's pictures: ``JOB/visualizations`` when
the job made them (``--visualize``), else a cached copy made earlier from the
same model, else it makes them from the job's TF-Hub module in one
subprocess running this module::

    python -m splitenc_plugin.results.visualize MODEL_DIR OUT [MODEL_DIR OUT ...]

which, per model, runs dlib's ``visualize_model.visualize`` (without the GIF
animations) and
:func:`~splitenc_plugin.results.traversals.visualize_fitted_traversals`
into ``OUT``. A subprocess, because TensorFlow and dlib stay out of the
aggregator's own process. One model's failure (e.g. a corrupt module) does
not cost the others their pictures, nor a fitted-traversal failure the
model's dlib stills; the exit code is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

from splitenc_plugin.sweep.job_files import read_done

__all__ = ["CACHE_STAMP", "main", "model_stamp", "visualizations"]

# Which model a cached visualization was made from: a job redone since (same
# directory, new model) must not reuse the old model's pictures.
CACHE_STAMP = "model_stamp.txt"


def model_stamp(job: Path) -> str:
    """Identifies the model a job directory holds: its completion time and TF-Hub module."""
    done = read_done(job) or {}
    try:
        module = (job / "model" / "tfhub" / "saved_model.pb").stat().st_mtime_ns
    except OSError:
        module = None
    return f"{done.get('finished_at')} {module}"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def visualizations(jobs: list[Path], cache: Path) -> dict[Path, Path]:
    """Visualization dirs (dlib visualize_model output) for jobs, making missing ones.

    Uses ``JOB/visualizations`` when the job made it (``--visualize``);
    otherwise runs dlib's ``visualize_model.visualize`` (without the GIF
    animations) and :func:`~splitenc_plugin.results.traversals.visualize_fitted_traversals`
    on the job's TF-Hub module into ``cache``, in one subprocess (:func:`main`).
    Jobs with neither (pruned) are left out.

    Args:
      jobs: Job directories.
      cache: Where pictures made here go, one ``<study>-<model_num>``
        directory per job (jobs of the same name from several output
        directories: ``<study>-<model_num>-<hash of the job's path>``),
        stamped with :func:`model_stamp`.

    Returns:
      Job directory -> the directory holding its ``reconstructions/`` and
      ``traversals/`` (and, where made, ``traversals_fitted/``).
    """
    names = {job: f"{job.parent.name}-{job.name}" for job in jobs}
    repeated = {name for name in names.values() if list(names.values()).count(name) > 1}
    for job, name in names.items():
        if name in repeated:
            digest = hashlib.sha256(str(job.resolve()).encode()).hexdigest()[:8]
            names[job] = f"{name}-{digest}"
    found, todo = {}, []
    for job in jobs:
        cached = cache / names[job]
        if (job / "visualizations" / "reconstructions" / "reconstructions.jpg").is_file():
            found[job] = job / "visualizations"
        elif ((cached / "reconstructions" / "reconstructions.jpg").is_file()
              and _read_text(cached / CACHE_STAMP) == model_stamp(job)):
            found[job] = cached
        elif (job / "model" / "tfhub").is_dir():
            todo.append(job)
    if todo:
        args = []
        for job in todo:
            args += [str(job / "model"), str(cache / names[job])]
        cache.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, "-m", "splitenc_plugin.results.visualize", *args],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print("warning: visualizing some models failed (Appendix C leaves them out "
                  f"or shows dlib's [-1, 1] traversals):\n{proc.stderr[-3000:]}",
                  file=sys.stderr)
        for job in todo:
            out = cache / names[job]
            if (out / "reconstructions" / "reconstructions.jpg").is_file():
                (out / CACHE_STAMP).write_text(model_stamp(job))
                found[job] = out
    return found


def main(argv: list[str] | None = None) -> int:
    """Makes each model's pictures; returns 1 if any model failed, else 0.

    Args:
      argv: ``MODEL_DIR OUT`` pairs: a job's ``model/`` directory (with its
        TF-Hub module) and the directory to (re)make its pictures in.
    """
    parser = argparse.ArgumentParser(
        prog="python -m splitenc_plugin.results.visualize",
        description="dlib visualize_model (no animations) and fitted-range traversals of "
                    "trained models, for splitenc_aggregate's Appendix C.")
    parser.add_argument("pairs", nargs="+", metavar="MODEL_DIR OUT",
                        help="a model directory and where its pictures go, repeated")
    pairs = parser.parse_args(argv).pairs
    if len(pairs) % 2:
        parser.error("expected MODEL_DIR OUT pairs")
    from disentanglement_lib.visualize import visualize_model

    from splitenc_plugin.results.traversals import (
        FITTED_DIR,
        visualize_fitted_traversals,
    )

    failed = False
    for model_dir, out in zip(pairs[::2], pairs[1::2]):
        shutil.rmtree(out, ignore_errors=True)
        steps = ((visualize_model.visualize, (model_dir, out), {"num_animations": 0}),
                 (visualize_fitted_traversals, (model_dir, os.path.join(out, FITTED_DIR)), {}))
        for make, args, kwargs in steps:
            try:
                make(*args, **kwargs)
            except Exception:  # noqa: BLE001 - one model's failure must not stop the others
                failed = True
                print(f"{model_dir}:", traceback.format_exc(limit=3), file=sys.stderr)
                break
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
