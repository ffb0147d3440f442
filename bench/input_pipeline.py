"""Input pipeline alone: dlib's per-image generator pipeline vs the vectorized one.

For each dataset, builds dlib's training pipeline exactly as
``train._make_input_fn`` does (``tf_data_set_from_ground_truth_data`` +
``.batch(64, drop_remainder=True)``) and the vectorized one
(:func:`splitenc_plugin.model.pipeline.vectorized_dataset`, what
``input_pipeline.vectorized = True`` uses), and measures batches per second
with nothing else running: one ``session.run`` pulls N batches through a
``Dataset.reduce`` inside the graph, so no per-batch Python/session overhead
of the consumer is counted. Variants are interleaved over ``--repeats``
rounds; medians and the vectorized / dlib speed ratio are printed.

Usage (from the repository root; dsprites_full needs
``$DISENTANGLEMENT_LIB_DATA``, which ``make`` sets to ``./data``)::

    .venv/bin/python -m bench.input_pipeline                         # dsprites_full, dummy_data
    .venv/bin/python -m bench.input_pipeline --datasets dsprites_full --repeats 9
    .venv/bin/python -m bench.input_pipeline --smoke                 # dummy_data, few batches
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bench import common

if TYPE_CHECKING:  # annotations only
    import tensorflow as tf

BATCH = 64
PIPELINES = ("dlib", "vectorized")


def load(name: str) -> Any:
    """The dlib dataset of that name (dlib's ``named_data``)."""
    from disentanglement_lib.data.ground_truth import named_data

    return named_data.get_named_ground_truth_data(name)


def dlib_dataset(ground_truth_data: Any, random_seed: int, batch_size: int) -> tf.data.Dataset:
    """dlib's own training pipeline, as ``train._make_input_fn`` builds it (the baseline)."""
    from disentanglement_lib.data.ground_truth import util

    dataset = util.tf_data_set_from_ground_truth_data(ground_truth_data, random_seed)
    return dataset.batch(batch_size, drop_remainder=True)


class _Runner:
    """A graph and session consuming ``num_batches`` batches of one pipeline per run."""

    def __init__(self, data: Any, pipeline_name: str, num_batches: int, seed: int = 0) -> None:
        import tensorflow.compat.v1 as tf

        from splitenc_plugin.model import pipeline

        self.num_batches = num_batches
        self.graph = tf.Graph()
        with self.graph.as_default():
            if pipeline_name == "dlib":
                dataset = dlib_dataset(data, seed, BATCH)
            else:
                dataset = pipeline.vectorized_dataset(data, seed, BATCH)
            def pull(count: int):
                # Consume `count` batches in-graph; the sum keeps every batch alive.
                return dataset.take(count).reduce(
                    tf.constant(0.0), lambda acc, batch: acc + tf.reshape(batch, [-1])[0])

            self.warm = pull(3)
            self.main = pull(num_batches)
        self.session = tf.Session(graph=self.graph)
        self.session.run(self.warm)

    def batches_per_second(self) -> float:
        start = time.perf_counter()
        self.session.run(self.main)
        return self.num_batches / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the benchmark (the module docstring's usage); prints its table."""
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="dsprites_full,dummy_data")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="approximate duration of one measurement")
    args = parser.parse_args(argv)
    datasets = ["dummy_data"] if args.smoke else args.datasets.split(",")
    common.check_datasets(parser, datasets)
    repeats = 1 if args.smoke else (args.repeats or 7)

    import disentanglement_lib  # noqa: F401  (compat layer: TF1 behaviour)

    rows, payload = [], []
    for name in datasets:
        data = load(name)
        # Size each measurement from a quick probe, so both take ~--seconds.
        runners: dict[str, _Runner] = {}
        for pipeline_name in PIPELINES:
            probe = _Runner(data, pipeline_name, 5 if args.smoke else 20)
            rate = probe.batches_per_second()
            probe.session.close()
            count = 5 if args.smoke else max(20, int(rate * args.seconds))
            runners[pipeline_name] = _Runner(data, pipeline_name, count)
        print(f"# {name}: {', '.join(f'{p} {r.num_batches} batches' for p, r in runners.items())}"
              f" per measurement, {repeats} rounds", file=sys.stderr, flush=True)
        samples = common.interleaved(list(PIPELINES), repeats,
                                     lambda p, runners=runners: runners[p].batches_per_second())
        med = {p: common.median(samples[p]) for p in PIPELINES}
        for p in PIPELINES:
            rows.append([name, p, med[p], 1e3 / med[p], med[p] * BATCH,
                         common.spread(samples[p]), med[p] / med["dlib"]])
            payload.append({"dataset": name, "pipeline": p, "batches_per_second": med[p],
                            "samples": samples[p], "speedup_vs_dlib": med[p] / med["dlib"]})
        for runner in runners.values():
            runner.session.close()
    print(f"Input pipeline alone: batch {BATCH}, batches pulled in-graph, "
          f"median of {repeats} interleaved rounds\n")
    print(common.format_table(
        ["dataset", "pipeline", "batches/s (median)", "ms/batch", "images/s", "batches/s range",
         "speed vs dlib"], rows))
    common.write_json(args.json, {"benchmark": "input_pipeline", "repeats": repeats,
                                  "rows": payload})


if __name__ == "__main__":
    main()
