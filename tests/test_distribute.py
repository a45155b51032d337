"""--precision and --strategy: mixed precision, and more than one device or machine (F7)."""

import csv
import hashlib
import json
import os
import pathlib
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnn
from tfnn import data, distribute, export
from tfnn.cli.train import argv
from tfnn.recipe import fit, plan, run
from tfnn.recipe.options import Options

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = {"dataset": "digits", "model": "mlp", "hidden_layers": (32,), "mc_dropout": 0}


def history(folder):
    with (pathlib.Path(folder) / "history.csv").open() as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_a_mixed_precision_run_learns_and_exports_float32(policy, tmp_path, data_dir):
    metrics = tfnn.train(
        dataset="digits",
        model="cnn",
        cnn="CB-8-3-1-same,M-2-2,F,D-0.2",
        epochs=3,
        precision=policy,
        data_dir=data_dir,
        verbose=0,
        logdir=str(tmp_path / "logs"),
        export_dir=str(tmp_path / "saved_models"),
    )
    assert keras.mixed_precision.dtype_policy().name == "float32"  # restored afterwards
    folder = next(p for p in (tmp_path / "logs").iterdir() if not p.name.startswith("."))
    losses = [float(row["loss"]) for row in history(folder)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    # Three epochs leave batch normalization's moving statistics unsettled (float32
    # gives 0.34 here too); twice chance (10 classes) shows the policy trains.
    assert metrics["test"]["accuracy"] > 0.2 and np.isfinite(metrics["test"]["loss"])
    served = tf.saved_model.load(metrics["export_path"]).signatures["serving_default"]
    x = data.load("digits", seed=42, data_dir=data_dir).test[0][:4]
    probabilities = served(inputs=tf.constant(x))["probabilities"]
    assert probabilities.dtype == tf.float32
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, atol=1e-5)
    assert "mc_dropout" in metrics  # the MC model runs under the policy too


@pytest.mark.parametrize(
    "steps, requested, strategy, expected",
    [
        (36, 10, "default", 9),
        (13, 10, "default", 1),
        (40, 10, "default", 10),
        (36, 10, "mirrored", 1),
    ],
)
def test_steps_per_execution_divides_the_epoch(steps, requested, strategy, expected):
    assert plan.steps_per_execution(steps, requested, strategy) == expected


def test_an_epoch_is_exactly_its_steps(tmp_path, data_dir):
    options = Options(**SMALL, epochs=2, data_dir=data_dir, verbose=0)
    dataset = data.load("digits", seed=42, data_dir=data_dir)
    the_plan = plan.make_plan(options, dataset, tf.distribute.get_strategy())
    fitted = fit.fit(the_plan, run.RunFolder(tmp_path / "run", tmp_path / "resume"), seed=1)
    steps = -(-len(dataset.train[1]) // options.batch_size)
    assert fitted.epochs == 2 and int(fitted.model.optimizer.iterations) == 2 * steps


def train_py(tmp_path, *flags, env=None, timeout=300):
    command = [sys.executable, str(ROOT / "train.py"), "--verbose", "0", *flags]
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finish(process, timeout=300):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err


def test_mirrored_over_two_cpu_devices_equals_one_device(tmp_path, data_dir):
    """Same global batch, same data order: the same training, and tfnn's clipping clips
    the whole batch's gradient on either (Keras's own clips each replica's part).

    Without dropout or augmentation: tf.data splits each batch for the replicas
    before the augmentation map runs, so their random draws differ from one
    device's (equal in distribution, not value by value)."""
    flags = argv(
        **SMALL,
        dropout=0.0,
        epochs=2,
        data_dir=data_dir,
        optimizer="sgd",
        learning_rate=0.5,
        decay="none",
        clip_mode="global_norm",
        clip=0.05,
        logdir="logs",
        export_dir="saved_models",
    )
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    single = train_py(tmp_path / "one", *flags)
    mirrored = train_py(tmp_path / "two", *flags, "--strategy", "mirrored", "--cpu_devices", "2")
    one, _ = finish(single)
    two, err = finish(mirrored)
    assert "mirrored: 2 replicas, global batch 100 = 2 × 50" in err
    x = data.load("digits", seed=42, data_dir=data_dir).test[0][:32]
    outputs = [
        tf.saved_model.load(str(folder / result["export_path"]))
        .signatures["serving_default"](inputs=tf.constant(x))["probabilities"]
        .numpy()
        for folder, result in ((tmp_path / "one", one), (tmp_path / "two", two))
    ]
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)
    assert two["val"]["loss"] == pytest.approx(one["val"]["loss"], abs=1e-5)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_one_model_and_only_the_chief_writes(tmp_path, data_dir):
    # Prepared once here: two processes preparing one TFDS folder at once race in TFDS.
    data.load("digits", seed=42, data_dir=data_dir)
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    flags = argv(
        **SMALL,
        epochs=2,
        data_dir=data_dir,
        strategy="multi_worker",
        logdir=str(tmp_path / "logs"),
        export_dir=str(tmp_path / "saved_models"),
    )
    processes = [
        train_py(
            tmp_path,
            *flags,
            env={
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
                )
            },
        )
        for index in (0, 1)
    ]
    (chief, chief_err), (worker, worker_err) = (finish(p, timeout=400) for p in processes)
    digests = [
        next(line for line in err.splitlines() if "final weights sha256" in line).split()[-1]
        for err in (chief_err, worker_err)
    ]
    assert digests[0] == digests[1]  # both workers hold the same weights
    assert chief["export_path"] and worker["export_path"] is None and worker["chief"] is False
    assert export.versions(tmp_path / "saved_models" / "digits") == [1]
    runs = [p for p in (tmp_path / "logs").iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1 and (runs[0] / "metrics.json").is_file()
    assert len(history(runs[0])) == 2
    assert chief["val"] == worker["val"]


def test_multi_worker_needs_tf_config(tmp_path, data_dir):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            *argv(**SMALL, data_dir=data_dir, strategy="multi_worker"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "TF_CONFIG" in result.stderr.splitlines()[-1]
    assert not (tmp_path / "logs").exists() and not (tmp_path / "saved_models").exists()


def test_chief_is_the_chief_or_worker_zero():
    class Resolver:
        def __init__(self, task_type, task_id, cluster):
            self.task_type, self.task_id, self._cluster = task_type, task_id, cluster

        def cluster_spec(self):
            return tf.train.ClusterSpec(self._cluster)

    class Strategy:
        def __init__(self, *args):
            self.cluster_resolver = Resolver(*args)

    workers = {"worker": ["a:1", "b:1"]}
    with_chief = {"chief": ["c:1"], **workers}
    assert distribute.is_chief(Strategy("worker", 0, workers))
    assert not distribute.is_chief(Strategy("worker", 1, workers))
    assert distribute.is_chief(Strategy("chief", 0, with_chief))
    assert not distribute.is_chief(Strategy("worker", 0, with_chief))
    assert distribute.is_chief(tf.distribute.get_strategy())


# One worker of a two-worker cluster: one epoch of the streamed training split through the
# strategy's distributed dataset, printed as the SHA-256 of every example it receives.
STREAMED_WORKER = """
import hashlib, json, sys
import tensorflow as tf
from tfnn import data
strategy = tf.distribute.MultiWorkerMirroredStrategy()
digits = data.load("digits", seed=42, data_dir=sys.argv[1], in_memory_bytes=0)
batches = strategy.experimental_distribute_dataset(data.stream_batches(digits.train, 50))
seen = []
for batch in batches:
    for x in strategy.experimental_local_results(batch[0]):
        seen += [hashlib.sha256(row.tobytes()).hexdigest() for row in x.numpy()]
print(json.dumps({"seen": seen}))
"""


def test_two_workers_each_receive_only_their_part_of_a_streamed_split(tmp_path, data_dir):
    """Sharded by data (one file) or by files: between them the workers see every training
    example once (a worker given the whole split, or none of it, fails)."""
    streamed = data.load("digits", seed=42, data_dir=data_dir, in_memory_bytes=0)  # prepared once
    expected = sorted(
        hashlib.sha256(row.tobytes()).hexdigest()
        for x, _ in data.stream_batches(streamed.train, 50).as_numpy_iterator()
        for row in x
    )
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", STREAMED_WORKER, data_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
                ),
            },
        )
        for index in (0, 1)
    ]
    parts = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        parts.append(json.loads(out.strip().splitlines()[-1])["seen"])
    assert parts[0] and parts[1]
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == expected
