"""The child processes of :mod:`bench.lean_data`: one dlib job each, in a fresh process.

Run by :mod:`bench.lean_data`, never by hand::

    python -m bench.lean_data_child --job LAUNCH JOB        # a measured job
    python -m bench.lean_data_child --postprocess SPEC      # the MIG model's mean.gin

``--job``: dlib's own ``train_with_gin`` or ``evaluate_with_gin``
(:func:`run_job`) with a first-step timestamp; ``LAUNCH`` is the parent's
``time.time()`` just before it started this process, ``JOB`` the job as JSON.
It prints one line, ``RESULT {json}``. ``--postprocess``: dlib's
``postprocess_with_gin`` (:func:`postprocess`), not measured; ``SPEC`` is JSON.

The parent measures this process from its launch (start-up to the first
training step, peak RSS), so everything imported here counts: the module
imports the standard library only, arguments are read from ``sys.argv`` by
hand (no argparse), and the entry points import the plugin and dlib inside,
patches first: ``--job`` imports dlib's ``named_data`` and the plugin's
registry, applies the bench's patches (below), then imports the compat
layer's instrumentation and dlib's train or evaluate; ``--postprocess``
imports the registry, patches it, then imports dlib's postprocess.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types

RESULT_PREFIX = "RESULT "


def _skip_completeness_check(registry: types.ModuleType) -> None:
    """Lets dlib load the bench's reduced dataset files (smoke subsets, Shapes3D blocks).

    Before dlib loads a dataset, the compat layer calls the plugin's
    ``registry.require_dataset``, which rejects files that are not the complete
    dataset; the bench's reduced files are incomplete on purpose. The check is
    looked up on the module when called, so replacing it there turns it off for
    this process.
    """
    registry.require_dataset = lambda *args, **kwargs: None


def run_job(launch: float, job: dict) -> dict:
    """Runs one dlib job (training or evaluation); returns its in-process measurements.

    Args:
      launch: The parent's ``time.time()`` just before it started this process;
        the first training step is timed from it.
      job: ``kind`` (``"train"`` or anything else: evaluate), ``model_dir``,
        ``gin`` (one gin config file), ``bindings``; for evaluations
        ``output_dir``; optional ``reduced`` (the dataset files are reduced:
        skip the completeness check) and ``block`` (Shapes3D factor sizes of
        a prefix block of the real order: draw factors inside it).

    Returns:
      ``first_step_s`` (training: launch -> end of the first step) or ``mig``
      and ``dlib_elapsed_s`` (evaluation: dlib's ``discrete_mig`` and
      ``elapsed_time``), and ``rss_file_mb_at_end`` / ``rss_anon_mb_at_end``
      (this process's file-backed and anonymous RSS at the end, MB).
    """
    from disentanglement_lib.data.ground_truth import named_data, util

    from splitenc_plugin.data import registry

    if job.get("reduced"):
        _skip_completeness_check(registry)
    block = job.get("block")
    if block:
        # A Shapes3D block file holds only a prefix block of the real order,
        # while dlib's state space spans every factor value: draw the factors
        # inside the block instead (the bench's only adjustment).
        original = named_data.get_named_ground_truth_data

        def get_named_ground_truth_data(*args, **kwargs):
            data = original(*args, **kwargs)
            data.state_space = util.SplitDiscreteStateSpace(block, list(range(6)))
            return data

        named_data.get_named_ground_truth_data = get_named_ground_truth_data
    from splitenc_plugin.compat import instrument_estimator_train

    first: list[float] = []

    def record_first_step(_: int) -> None:
        if not first:
            first.append(time.time())

    instrument_estimator_train(on_step=record_first_step)
    result: dict = {}
    if job["kind"] == "train":
        from disentanglement_lib.methods.unsupervised import train

        train.train_with_gin(job["model_dir"], overwrite=True, gin_config_files=[job["gin"]],
                             gin_bindings=job["bindings"])
        result["first_step_s"] = first[0] - launch
    else:
        from disentanglement_lib.evaluation import evaluate

        evaluate.evaluate_with_gin(job["model_dir"], job["output_dir"], overwrite=True,
                                   gin_config_files=[job["gin"]], gin_bindings=job["bindings"])
        path = os.path.join(job["output_dir"], "results", "json", "evaluation_results.json")
        with open(path) as f:
            metrics = json.load(f)
        result["mig"] = metrics.get("discrete_mig")
        result["dlib_elapsed_s"] = metrics.get("elapsed_time")
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f)
    result["rss_file_mb_at_end"] = int(status.get("RssFile", "0 kB").split()[0]) / 1024
    result["rss_anon_mb_at_end"] = int(status.get("RssAnon", "0 kB").split()[0]) / 1024
    return result


def postprocess(model_dir: str, output_dir: str, gin_file: str, reduced: bool) -> None:
    """dlib's ``postprocess_with_gin`` of a trained model (e.g. its mean representation).

    Args:
      model_dir: The trained model's directory.
      output_dir: Where the representation goes.
      gin_file: dlib's postprocessing config (e.g. ``mean.gin``).
      reduced: The dataset files are reduced: skip the completeness check.
    """
    from splitenc_plugin.data import registry

    if reduced:
        _skip_completeness_check(registry)
    from disentanglement_lib.postprocessing import postprocess as dlib_postprocess

    dlib_postprocess.postprocess_with_gin(model_dir, output_dir, gin_config_files=[gin_file])


def main(argv: list[str]) -> None:
    """Runs the entry point that ``argv`` (the arguments after the program) names."""
    if len(argv) == 3 and argv[0] == "--job":
        result = run_job(float(argv[1]), json.loads(argv[2]))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
    elif len(argv) == 2 and argv[0] == "--postprocess":
        spec = json.loads(argv[1])
        postprocess(spec["model_dir"], spec["output_dir"], spec["gin"], spec["reduced"])
    else:
        sys.exit(f"usage: python -m bench.lean_data_child --job LAUNCH JOB | --postprocess SPEC"
                 f" (got {argv})")


if __name__ == "__main__":
    main(sys.argv[1:])
