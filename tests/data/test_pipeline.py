"""The tf.data pipelines: the worker count, the conversion to what the model takes, and the
order, sample and sharding of a split's batches, in memory and streamed from several files."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfnn import data, tasks
from tfnn.data import pipeline


@pytest.mark.parametrize(
    "config, expected",
    [
        (None, 1),
        ({}, 1),
        ({"cluster": {}}, 1),
        ({"cluster": {"worker": ["a:1"]}}, 1),
        ({"cluster": {"worker": ["a:1", "b:2", "c:3"]}}, 3),
        ({"cluster": {"chief": ["c:0"], "worker": ["a:1", "b:2"]}}, 3),
        ({"cluster": {"chief": ["c:0"]}}, 1),
    ],
    ids=["no TF_CONFIG", "no cluster", "empty cluster", "one", "three", "chief and two", "chief"],
)
def test_the_workers_are_tf_configs_workers_and_chief_at_least_one(monkeypatch, config, expected):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert pipeline.workers() == expected


def test_uint8_images_become_floats_from_0_to_1_and_other_inputs_keep_their_values():
    x, y = pipeline.converted(
        tf.constant([0, 51, 255], tf.uint8), tf.constant([2, 0, 1]), tasks.Task(tasks.CLASSES, 3)
    )
    assert x.dtype == tf.float32 and y.dtype == tf.int64
    np.testing.assert_array_equal(x, np.float32([0.0, 0.2, 1.0]))  # 255 → exactly 1
    x, y = pipeline.converted(
        tf.constant([-2.5, 300.0], tf.float64), tf.constant([1.5, 2]), tasks.Task(tasks.REGRESSION)
    )
    assert x.dtype == tf.float32 and y.dtype == tf.float32
    np.testing.assert_array_equal(x, np.float32([-2.5, 300.0]))  # not divided by 255
    np.testing.assert_array_equal(y, np.float32([1.5, 2.0]))
    _, y = pipeline.converted(tf.constant([1.0]), tf.constant([1]), tasks.Task(tasks.BINARY, 2))
    assert y.dtype == tf.int64


def labels(batches):
    return np.concatenate([y for _, y in batches.as_numpy_iterator()]).tolist()


def epochs(batches, count):
    """The labels of `count` passes over one pipeline."""
    return [labels(batches) for _ in range(count)]


def test_every_example_can_come_first_the_last_one_included():
    """The shuffle buffer holds the whole split: with one less, the last never comes first."""
    x, y = np.zeros((3, 1), np.float32), np.arange(3)
    firsts = {labels(data.batches(x, y, 3, shuffle_seed=seed))[0] for seed in range(30)}
    assert firsts == {0, 1, 2}


def test_an_unshuffled_pipeline_keeps_the_order_and_a_shuffled_one_changes_every_epoch():
    x, y = np.zeros((12, 1), np.float32), np.arange(12)
    assert epochs(data.batches(x, y, 5), 2) == [list(range(12))] * 2
    first, second = epochs(data.batches(x, y, 5, shuffle_seed=0), 2)
    assert sorted(first) == sorted(second) == list(range(12)) and first != second


def test_a_bootstrap_sample_can_draw_the_first_and_the_last_example():
    """Indices are uniform on [0, n): both ends reachable, nothing past them."""
    x, y = np.zeros((4, 1), np.float32), np.arange(4)
    drawn = set()
    for seed in range(20):
        sample = labels(data.batches(x, y, 4, bootstrap_seed=seed))
        assert len(sample) == 4
        drawn |= set(sample)
    assert drawn == {0, 1, 2, 3}


def test_an_endless_unshuffled_pipeline_repeats_the_split_in_order():
    x, y = np.zeros((5, 1), np.float32), np.arange(5)
    batches = data.batches(x, y, 2, repeat=True)
    got = [b[1].numpy().tolist() for b in batches.take(6)]
    assert got == [[0, 1], [2, 3], [4], [0, 1], [2, 3], [4]]


def test_an_endless_pipeline_orders_each_epoch_by_the_seed_and_the_epoch():
    """Epoch e's order is a function of (seed, e): another seed, another order."""
    x, y = np.zeros((8, 1), np.float32), np.arange(8)

    def first_epochs(seed):
        batches = data.batches(x, y, 8, shuffle_seed=seed, repeat=True)
        return [b[1].numpy().tolist() for b in batches.take(3)]

    one, other = first_epochs(1), first_epochs(2)
    assert one == first_epochs(1) and one != other
    assert len({tuple(order) for order in one + other}) == 6


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """diabetes prepared in 4 files a split, its splits streamed: the test split is one read
    of 4 files, 88 examples."""
    tfds.display_progress_bar(False)
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    builder = tfds.builder("diabetes", data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(num_shards=4))
    ds = data.load("diabetes", seed=0, data_dir=data_dir, in_memory_bytes=0)
    assert ds.test.files == ds.test.shardable_files == 4 and ds.test.size == 88
    return ds


def stored(stream):
    return [float(y) for _, y in stream.examples().as_numpy_iterator()]


def test_a_seeded_stream_reads_its_files_in_a_seeded_order(sharded, monkeypatch):
    """With a shuffle buffer of one example, only the files' order is left: stored without a
    seed, shuffled by a seed (the same for the same seed), stored again under a bootstrap
    (which fixes the sample by the examples' positions)."""
    monkeypatch.setattr(pipeline, "SHUFFLE_BUFFER", 1)
    test = sharded.test
    plain = labels(data.stream_batches(test, 100))
    assert plain == stored(test)
    orders = []
    for seed in (1, 1, 2):  # from the same global random state: only the seed differs
        tf.random.set_seed(0)
        orders.append(labels(data.stream_batches(test, 100, shuffle_seed=seed)))
    assert orders[0] == orders[1] != plain and orders[2] != orders[0]
    assert sorted(orders[0]) == sorted(plain)


def test_a_streamed_bootstrap_sample_is_the_same_whatever_the_shuffle_seed(sharded):
    """The Poisson counts depend on (seed, position) only: the files must be read in their
    stored order under a bootstrap, whatever the shuffle seed."""
    test = sharded.test
    samples = [
        sorted(labels(data.stream_batches(test, 100, shuffle_seed=s, bootstrap_seed=7)))
        for s in (1, 2)
    ]
    assert samples[0] == samples[1] != sorted(stored(test))


def test_a_streamed_bootstrap_sample_draws_one_copy_of_each_example_on_average(sharded):
    """k ~ Poisson(1) copies per example: over 10 samples of 88 examples, 880 ± 4·√880 in all
    (Poisson(2) would give about 1760)."""
    test = sharded.test
    samples = [labels(data.stream_batches(test, 100, bootstrap_seed=seed)) for seed in range(10)]
    assert abs(sum(map(len, samples)) - 880) < 4 * np.sqrt(880)


def test_a_shuffled_stream_takes_a_new_order_every_epoch(sharded):
    first, second = epochs(data.stream_batches(sharded.test, 100, shuffle_seed=3), 2)
    assert sorted(first) == sorted(second) and first != second


def test_files_are_handed_out_when_there_are_exactly_as_many_as_workers():
    policy = tf.data.experimental.AutoShardPolicy
    assert pipeline.shard_policy(files=3, n_workers=3) == policy.FILE
    assert pipeline.shard_policy(files=2, n_workers=3) == policy.DATA
    assert pipeline.shard_policy(files=0, n_workers=1) == policy.DATA


def test_a_stream_is_sharded_by_files_when_every_worker_gets_one(sharded, monkeypatch):
    policy = tf.data.experimental.AutoShardPolicy

    def chosen(stream):
        options = data.stream_batches(stream, 100).options()
        return options.experimental_distribute.auto_shard_policy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert chosen(sharded.test) == policy.FILE  # 4 files, 1 worker
    assert chosen(sharded.train) == policy.DATA  # two reads: nothing to hand out by file
    cluster = {"cluster": {"worker": [f"w{i}:1" for i in range(5)]}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert chosen(sharded.test) == policy.DATA  # 4 files, 5 workers
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"] * 4}}))
    assert chosen(sharded.test) == policy.FILE  # 4 files, 4 workers: one each


def test_first_epoch_is_checked_zero_allowed():
    """Catches `validation.integer` of first_epoch with another name, or without `low=0`
    (epoch −1's order, from a counter started below zero)."""
    x, y = np.zeros((3, 1), np.float32), np.arange(3)
    message = re.escape("Expected an integer >= 0. Received: first_epoch=-1")
    with pytest.raises(ValueError, match=message):
        data.batches(x, y, 2, first_epoch=-1)
    assert labels(data.batches(x, y, 2, first_epoch=0)) == [0, 1, 2]


def test_a_resumed_endless_pipeline_takes_the_order_an_uninterrupted_one_had_at_that_epoch():
    """Catches a default `first_epoch` other than 0, and a counter not started at
    `first_epoch`: epoch k of a pipeline started at 0 is epoch k of one started at k."""
    x, y = np.zeros((8, 1), np.float32), np.arange(8)

    def orders(**options):
        batches = data.batches(x, y, 8, shuffle_seed=5, repeat=True, **options)
        return [b[1].numpy().tolist() for b in batches.take(3)]

    uninterrupted = orders()
    assert uninterrupted == orders(first_epoch=0)
    assert orders(first_epoch=2)[0] == uninterrupted[2] != uninterrupted[0]
    assert orders(first_epoch=1)[:2] == uninterrupted[1:]


def test_the_same_shuffle_seed_gives_the_same_epochs_and_the_last_batch_is_partial():
    """Catches the shuffle's seed not passed (`seed=None`: an order from the global seed, or
    none), and a last partial batch dropped."""
    x, y = np.zeros((12, 1), np.float32), np.arange(12)
    one, other = data.batches(x, y, 5, shuffle_seed=4), data.batches(x, y, 5, shuffle_seed=4)
    assert epochs(one, 2) == epochs(other, 2)
    assert [len(b) for _, b in one.as_numpy_iterator()] == [5, 5, 2]


class Listed:
    """What `stream_batches` reads of a `tfnn.data.Stream`, in memory: `n` examples read in
    this order, x = [i mod 256, 255] as uint8 and y = i (a class index), as TFDS decodes
    them; it records the arguments of each read of its files."""

    def __init__(self, n, shardable_files=1):
        self.x = np.stack([np.arange(n) % 256, np.full(n, 255)], axis=1).astype(np.uint8)
        self.y = np.arange(n)
        self.task = tasks.Task(tasks.CLASSES, n)
        self.shardable_files = shardable_files
        self.reads = []

    def examples(self, *, shuffle_files=False, seed=None):
        self.reads.append({"shuffle_files": shuffle_files, "seed": seed})
        return tf.data.Dataset.from_tensor_slices((self.x, self.y))


def taken(batches, most=50):
    """The (x, y) batches, at most `most` of them: an endless pipeline fails a test, not
    hangs it."""
    return list(batches.take(most).as_numpy_iterator())


def streamed_labels(batches):
    return np.concatenate([y for _, y in taken(batches)]).tolist()


def test_an_unseeded_stream_is_read_in_order_batched_with_a_partial_last_batch_and_converted():
    """Catches a stream read with its files shuffled or through a shuffle buffer without a
    seed, endless by default, batched otherwise, or not converted (uint8 → [0, 1], int64
    class indices)."""
    stream = Listed(10)
    got = taken(data.stream_batches(stream, 4))
    assert stream.reads == [{"shuffle_files": False, "seed": None}]
    assert [len(y) for _, y in got] == [4, 4, 2]
    x, y = np.concatenate([x for x, _ in got]), np.concatenate([y for _, y in got])
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert y.tolist() == list(range(10))
    np.testing.assert_array_equal(x, np.float32(stream.x) / 255)


def test_a_seeded_stream_shuffles_files_and_buffer_anew_each_epoch_alike_for_one_seed():
    """Catches the files read unshuffled or without the seed, the buffer unshuffled or
    shuffled without the seed (two pipelines of one seed would then differ), and a buffer
    that does not reshuffle each epoch."""
    stream = Listed(60)
    seeded = data.stream_batches(stream, 100, shuffle_seed=3)
    first, second = streamed_labels(seeded), streamed_labels(seeded)
    assert stream.reads == [{"shuffle_files": True, "seed": 3}]
    assert sorted(first) == sorted(second) == list(range(60))
    assert first != list(range(60)) and second != first
    again = data.stream_batches(Listed(60), 100, shuffle_seed=3)
    assert [streamed_labels(again), streamed_labels(again)] == [first, second]
    assert streamed_labels(data.stream_batches(Listed(60), 100, shuffle_seed=4)) != first


def test_a_streamed_bootstrap_repeats_examples_in_place_one_copy_on_average():
    """Catches files shuffled under a bootstrap (positions, and so the sample, would follow
    the shuffle seed), the sample not a function of the bootstrap seed, and a Poisson mean
    other than 1: 1000 examples give 1000 ± 4·√1000 copies (Poisson(2): about 2000)."""
    stream = Listed(1000)
    sample = streamed_labels(data.stream_batches(stream, 5000, bootstrap_seed=7))
    assert stream.reads == [{"shuffle_files": False, "seed": None}]
    assert sample == sorted(sample)  # stored order, each example k times in its place
    assert len(set(sample)) < 1000 and len(set(sample)) < len(sample)  # some out, some twice
    assert abs(len(sample) - 1000) < 4 * np.sqrt(1000)
    for shuffle_seed in (1, 2):
        stream = Listed(1000)
        batches = data.stream_batches(stream, 5000, shuffle_seed=shuffle_seed, bootstrap_seed=7)
        shuffled = streamed_labels(batches)
        assert stream.reads == [{"shuffle_files": False, "seed": shuffle_seed}]
        assert sorted(shuffled) == sample != shuffled
    other = streamed_labels(data.stream_batches(Listed(1000), 5000, bootstrap_seed=8))
    assert other != sample


def test_a_stream_with_one_hot_gives_one_hot_float_rows():
    """Catches `one_hot` ignored, or given to tf.one_hot as anything but its depth."""
    x, y = taken(data.stream_batches(Listed(3), 3, one_hot=3))[0]
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.eye(3, dtype=np.float32))


def test_an_endless_stream_batches_each_epoch_on_its_own():
    """Catches `repeat` ignored: the split again after its last, partial batch."""
    got = taken(data.stream_batches(Listed(5), 2, repeat=True), most=6)
    assert [y.tolist() for _, y in got] == [[0, 1], [2, 3], [4]] * 2


@pytest.mark.parametrize(
    "files, workers, expected",
    [(3, 3, "FILE"), (3, 4, "DATA"), (1, 1, "FILE"), (0, 1, "DATA")],
    ids=["as many files as workers", "a worker short of a file", "one and one", "no files"],
)
def test_a_stream_takes_the_shard_policy_of_its_files_and_workers(
    monkeypatch, files, workers, expected
):
    """Catches the policy chosen from anything but the stream's shardable files and the
    workers' count, or not set on the pipeline's options."""
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["w:1"] * workers}}))
    options = data.stream_batches(Listed(4, shardable_files=files), 2).options()
    policy = options.experimental_distribute.auto_shard_policy
    assert policy == getattr(tf.data.experimental.AutoShardPolicy, expected)
