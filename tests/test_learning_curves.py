"""learning_curves: reading the estimator's training summaries into learning_curves.json.

The event files here are written record by record (TFRecord framing of
``Event`` protos, exactly what TF's writers produce), so each case is known;
the files a real dlib training writes are read in test_study_job_outputs.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from splitenc_plugin.results.learning_curves import (
    CURVES_FILE,
    read_learning_curves,
    write_learning_curves,
)


def _event(step: int, wall_time: float, **values: float | str | np.ndarray):
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    event = event_pb2.Event(step=step, wall_time=wall_time)
    for tag, value in values.items():
        entry = event.summary.value.add(tag=tag.replace("__", "/"))
        if isinstance(value, float):
            entry.simple_value = value
        else:
            entry.tensor.CopyFrom(tf.make_tensor_proto(value))
    return event


def _write_events(path: Path, events, truncate: bool = False) -> None:
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for event in events:
            writer.write(event.SerializeToString())
    if truncate:  # a killed writer: half of one more record
        record = _event(999, 9.0, loss=1.0).SerializeToString()
        with open(path, "ab") as f:
            f.write(len(record).to_bytes(8, "little") + b"\0\0\0\0" + record[:3])


def test_a_model_without_event_files_gets_no_curves(tmp_path) -> None:
    assert write_learning_curves(tmp_path / "model") is None
    # dlib's post-training evaluation (eval/) is not a learning curve.
    _write_events(tmp_path / "model" / "tf_checkpoint" / "eval" / "events.out.tfevents.1.vm",
                  [_event(5, 1.0, loss=2.0)])
    assert write_learning_curves(tmp_path / "model") is None
    # A file that is not an event file at all (e.g. cut off by a full disk).
    (tmp_path / "model" / "tf_checkpoint" / "events.out.tfevents.2.vm").write_bytes(b"\x01" * 40)
    assert write_learning_curves(tmp_path / "model") is None
    assert not (tmp_path / "model" / CURVES_FILE).exists()


def test_scalars_are_aligned_on_steps_with_nulls(tmp_path) -> None:
    checkpoint = tmp_path / "model" / "tf_checkpoint"
    _write_events(checkpoint / "events.out.tfevents.1.vm", [
        _event(1, 1.0, loss_1=3.0, reconstruction_loss_1=2.5, elbo_1=-3.0),
        _event(2, 1.5, global_step__sec=8.0),  # throughput: left out
        _event(101, 2.0, loss_1=2.0, reconstruction_loss_1=float("nan"), elbo_1=-2.0),
        _event(101, 2.1, checkpoint_path=np.array(b"model.ckpt-101")),  # not a number
        _event(150, 2.5, kl=np.array(0.25, dtype=np.float32)),  # a TF2 tensor summary
    ])
    path = write_learning_curves(tmp_path / "model")
    assert path == tmp_path / "model" / CURVES_FILE
    curves = json.loads(path.read_text())
    assert curves == {"steps": [1, 101, 150],
                      "loss": [3.0, 2.0, None],
                      "reconstruction_loss": [2.5, None, None],  # NaN -> null
                      "elbo": [-3.0, -2.0, None],
                      "kl": [None, None, 0.25]}


def test_the_newest_write_of_a_step_wins_and_a_truncated_file_is_read_up_to_its_end(
        tmp_path) -> None:
    checkpoint = tmp_path / "tf_checkpoint"
    _write_events(checkpoint / "events.out.tfevents.1.vm",
                  [_event(1, 1.0, loss=3.0), _event(101, 2.0, loss=2.0)], truncate=True)
    _write_events(checkpoint / "events.out.tfevents.2.vm",
                  [_event(101, 5.0, loss=1.5), _event(201, 6.0, loss=1.25)])
    assert read_learning_curves(checkpoint) == {"steps": [1, 101, 201], "loss": [3.0, 1.5, 1.25]}


def test_a_suffixed_tag_keeps_its_suffix_when_the_bare_name_exists(tmp_path) -> None:
    checkpoint = tmp_path / "tf_checkpoint"
    _write_events(checkpoint / "events.out.tfevents.1.vm",
                  [_event(1, 1.0, loss=1.0, loss_1=2.0, step_10=3.0)])
    curves = read_learning_curves(checkpoint)
    assert curves == {"steps": [1], "loss": [1.0], "loss_1": [2.0], "step": [3.0]}


@pytest.mark.parametrize("value", [0.1, 1e-8, 12345.678])
def test_values_keep_float32_precision(tmp_path, value) -> None:
    checkpoint = tmp_path / "tf_checkpoint"
    _write_events(checkpoint / "events.out.tfevents.1.vm", [_event(1, 1.0, loss=value)])
    [stored] = read_learning_curves(checkpoint)["loss"]
    assert np.float32(stored) == np.float32(value)


def test_earlier_attempts_count_up_to_the_step_the_next_one_resumed_from(tmp_path) -> None:
    # Attempt 1 logged steps 1..301 and was killed; its newest checkpoint was at
    # 250, so attempt 2 resumed from 250 (logging 251, 351) and was killed too;
    # attempt 3 resumed from 350 (251..350 of attempt 2 count, 351 does not).
    first, second, last = (tmp_path / name for name in ("1", "2", "tf_checkpoint"))
    _write_events(first / "events.out.tfevents.1.vm",
                  [_event(step, 1.0 + step, loss=float(step)) for step in (1, 101, 201, 301)])
    _write_events(second / "events.out.tfevents.2.vm",
                  [_event(step, 1e3 + step, loss=-float(step)) for step in (251, 351)])
    _write_events(last / "events.out.tfevents.3.vm",
                  [_event(step, 1e4 + step, loss=0.5) for step in (351, 451)])
    curves = read_learning_curves(last, earlier=[(first, 250), (second, 350)])
    assert curves == {"steps": [1, 101, 201, 251, 351, 451],
                      "loss": [1.0, 101.0, 201.0, -251.0, 0.5, 0.5]}
    # An attempt that saved no checkpoint of its own counts for nothing.
    assert read_learning_curves(last, earlier=[(first, 250), (second, 250)])["steps"] == \
        [1, 101, 201, 351, 451]
    # Written beside the model like a single attempt's curves.
    model = tmp_path / "model"
    shutil.copytree(last, model / "tf_checkpoint")
    path = write_learning_curves(model, earlier=[(first, 250), (second, 350)])
    assert json.loads(path.read_text()) == curves
