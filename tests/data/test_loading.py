"""`load`: the task a label describes, the in-memory limit, the held-out share and its block,
and the refusal of a catalog set that cannot be downloaded (tests/data/test_data.py loads
every embedded set; test_streaming.py and test_splits.py read the streamed splits)."""

import fcntl
import os
import random

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfnn import data
from tfnn.data import loading


@pytest.mark.parametrize(
    "feature, expected",
    [
        (tfds.features.ClassLabel(num_classes=2), data.Task(data.BINARY, 2)),
        (tfds.features.ClassLabel(num_classes=3), data.Task(data.CLASSES, 3)),
        (tfds.features.ClassLabel(num_classes=10), data.Task(data.CLASSES, 10)),
        (tfds.features.Scalar(dtype=np.float32), data.Task(data.REGRESSION)),
        (tfds.features.Scalar(dtype=np.float64), data.Task(data.REGRESSION)),
    ],
    ids=["two classes", "three", "ten", "float32", "float64"],
)
def test_the_label_feature_decides_the_task(feature, expected):
    assert loading.task_of(feature) == expected


@pytest.mark.parametrize(
    "feature",
    [tfds.features.Scalar(dtype=np.int64), tfds.features.Tensor(shape=(2,), dtype=np.float32)],
    ids=["integer scalar", "float vector"],
)
def test_other_label_features_are_refused_naming_them(feature):
    with pytest.raises(ValueError) as error:
        loading.task_of(feature)
    assert str(error.value) == (
        f"Expected a ClassLabel or a float scalar label. Received: label feature {feature!r}"
    )


DIGITS_BYTES = (1438 + 359) * 8 * 8 * 1 * 4  # digits' train and test splits in float32


def test_a_set_exactly_at_the_in_memory_limit_stays_in_memory_one_byte_less_streams(data_dir):
    at = data.load("digits", seed=0, data_dir=data_dir, in_memory_bytes=DIGITS_BYTES)
    past = data.load("digits", seed=0, data_dir=data_dir, in_memory_bytes=DIGITS_BYTES - 1)
    assert isinstance(at.train, data.Arrays) and isinstance(past.train, data.Stream)
    assert at.name == past.name == "digits" and at.task == past.task


def test_the_default_limit_is_read_where_it_is_defined(data_dir, monkeypatch):
    monkeypatch.setattr(loading, "IN_MEMORY_BYTES", DIGITS_BYTES - 1)
    assert isinstance(data.load("digits", seed=0, data_dir=data_dir).train, data.Stream)
    monkeypatch.setattr(loading, "IN_MEMORY_BYTES", DIGITS_BYTES)
    assert isinstance(data.load("digits", seed=0, data_dir=data_dir).train, data.Arrays)


@pytest.mark.parametrize("in_memory_bytes", [None, 0], ids=["in memory", "streamed"])
def test_a_tiny_validation_share_still_holds_out_one_example(data_dir, in_memory_bytes):
    """round(1e-4 · 1438) = 0: at least one example is held out, exactly one."""
    ds = data.load(
        "digits",
        seed=0,
        validation_fraction=1e-4,
        data_dir=data_dir,
        in_memory_bytes=in_memory_bytes,
    )
    assert data.size(ds.validation) == 1 and data.size(ds.train) == 1437


@pytest.mark.parametrize("in_memory_bytes", [None, 0], ids=["in memory", "streamed"])
def test_the_validation_share_is_rounded_to_the_nearest_example(data_dir, in_memory_bytes):
    """0.15 · 1438 = 215.7 → 216 (not 215) held out, on both paths."""
    ds = data.load(
        "digits",
        seed=0,
        validation_fraction=0.15,
        data_dir=data_dir,
        in_memory_bytes=in_memory_bytes,
    )
    assert data.size(ds.validation) == 216 and data.size(ds.train) == 1438 - 216


def test_the_streamed_validation_block_can_start_at_either_end(data_dir):
    """With 1437 of 1438 examples held out the block starts at 0 or 1, both reachable by
    some seed; the training split is then the one example left, a single read."""
    starts = set()
    for seed in range(12):
        ds = data.load(
            "digits", seed=seed, validation_fraction=0.999, data_dir=data_dir, in_memory_bytes=0
        )
        expected_start = random.Random(seed).randrange(2)
        starts.add(expected_start)
        assert ds.validation.pieces == (f"train[{expected_start}:{expected_start + 1437}]",)
        left = "train[1437:1438]" if expected_start == 0 else "train[0:1]"
        assert ds.train.pieces == (left,)
        assert (ds.train.size, ds.validation.size, ds.test.size) == (1, 1437, 359)
        assert ds.test.pieces == ("test",)
    assert starts == {0, 1}


def test_the_streamed_validation_block_of_a_seed_is_drawn_from_every_start(data_dir):
    ds = data.load("digits", seed=5, data_dir=data_dir, in_memory_bytes=0)
    start = random.Random(5).randrange(1438 - 144 + 1)
    assert ds.validation.pieces == (f"train[{start}:{start + 144}]",)
    assert ds.train.pieces == (f"train[0:{start}]", f"train[{start + 144}:1438]")


def test_the_probe_of_the_download_host_waits_at_most_the_probe_time(data_dir, monkeypatch):
    """An unreachable host is one ValueError naming the set, the folder and the host."""
    calls = []

    def unreachable(address, timeout=None):
        calls.append((address, timeout))
        raise OSError("no route")

    monkeypatch.setattr(loading._socket, "create_connection", unreachable)
    with pytest.raises(ValueError) as error:
        data.load("mnist", seed=0, data_dir=data_dir)
    assert calls == [(loading.DOWNLOAD_HOST, loading.DOWNLOAD_PROBE_SECONDS)]
    root = os.path.abspath(data_dir)
    assert str(error.value) == (
        f"Expected dataset 'mnist' in data folder {root} or a network to download it: "
        "storage.googleapis.com is unreachable (no route). Received: dataset='mnist'"
    )


def test_an_embedded_set_never_probes_the_network(data_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("probed the network")

    monkeypatch.setattr(loading._socket, "create_connection", refuse)
    assert data.size(data.load("breast_cancer", seed=0, data_dir=data_dir).test) == 114


@pytest.mark.parametrize(
    "name, reason",
    [
        ("no_such_set", "not in TFDS's catalog"),
        # "namespace:name" would be fetched from another hub
        ("huggingface:mnist", "a community data set of another hub"),
        # TFDS's ValueError is several lines: the first is kept, without its full stop
        ("Mnist!", "Parsing builder name string Mnist! failed"),
    ],
)
def test_an_unknown_name_is_refused_in_one_line_naming_the_embedded_sets(data_dir, name, reason):
    """Catches any change to the refusal's name or reason (`_unknown(None, …)`, the reason
    dropped, altered, another line of TFDS's or another strip)."""
    with pytest.raises(ValueError) as error:
        data.load(name, seed=0, data_dir=data_dir)
    assert str(error.value) == (
        f"Unknown dataset {name!r} ({reason}): expected one of mnist1d, digits, diabetes, "
        "breast_cancer, a TFDS catalog name (name[/config][:version]) or an image folder path. "
        f"Received: dataset={name!r}"
    )


def test_preparing_holds_the_data_folders_lock(tmp_path):
    folder = tmp_path / "new" / "tfds"
    with loading._preparing(str(folder)):
        lock = folder / loading.PREPARE_LOCK
        assert lock.is_file()
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # held: another process would wait
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_a_remote_data_folder_is_not_made_or_locked_locally(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with loading._preparing("gs://bucket/tfds"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_replaced_download_counts_as_prepared(data_dir):
    builder = tfds.builder("mnist", data_dir=data_dir)
    assert not loading._prepared(builder)
    with tfds.testing.mock_data(num_examples=3):
        assert loading._prepared(builder)


def test_a_name_with_a_version_is_a_catalog_name_not_a_community_one(data_dir):
    """ "name:1.0.0" (a digit after the colon) is looked up in TFDS's catalog. Catches a
    community pattern that also takes a version for a hub's data set name."""
    with pytest.raises(ValueError, match=r"^Unknown dataset 'no_such_set:1\.0\.0' \(not in"):
        data.load("no_such_set:1.0.0", seed=0, data_dir=data_dir)


def test_the_held_out_share_may_leave_one_example_to_train_on_not_none():
    """1437 of 1438 held out is accepted; 1438 of 1438 (round(0.9997 · 1438)) is refused,
    naming what it would keep. Catches `n_validation > n` and the message's arithmetic."""
    assert loading._held_out(1438, 0.999) == 1437
    with pytest.raises(ValueError) as error:
        loading._held_out(1438, 0.9997)
    assert str(error.value) == (
        "Expected a validation_fraction that leaves examples to train on: it holds out 1438 of "
        "the train split's 1438 examples, so training keeps 0 (at least 1 is needed). "
        "Received: validation_fraction=0.9997"
    )


def test_a_set_is_prepared_and_read_in_the_given_data_folder(data_dir):
    """The builder made again under the preparation lock keeps `data_dir`. Catches
    `_tfds.builder(name)` there without it (prepared in TFDS's default folder instead)."""
    ds = data.load("digits", seed=0, data_dir=data_dir, in_memory_bytes=0)
    assert ds.test.builder.data_dir.startswith(os.path.abspath(data_dir))


@pytest.mark.parametrize("fraction", [0, 1, 1.5], ids=["none", "all", "more"])
def test_a_validation_fraction_outside_the_open_interval_is_refused(data_dir, fraction):
    """validation_fraction lies in (0, 1), both ends open, refused before any data is read.
    Catches either end made closed or dropped, another upper end (0 would still hold out one
    example; 1 and 1.5 would reach the held-out count's own refusal) and the name changed."""
    with pytest.raises(ValueError) as error:
        data.load("digits", seed=0, validation_fraction=fraction, data_dir=data_dir)
    assert str(error.value) == (
        f"Expected a finite number in (0, 1). Received: validation_fraction={fraction}"
    )


def test_the_in_memory_validation_split_is_the_seeds_permutations_first_share(data_dir):
    """validation = train[perm[:n_v]], training = train[perm[n_v:]], perm the permutation
    numpy's default_rng(seed) draws. Catches another generator seed and other slices."""
    ds = data.load("digits", seed=3, data_dir=data_dir)
    builder = tfds.builder("digits", data_dir=data_dir)
    x, y = tfds.as_numpy(builder.as_dataset(split="train", as_supervised=True, batch_size=-1))
    x = x.astype("float32") / 255.0 if x.dtype == np.uint8 else x.astype("float32")
    order = np.random.default_rng(3).permutation(1438)
    np.testing.assert_array_equal(ds.validation.x, x[order[:144]])
    np.testing.assert_array_equal(ds.validation.y, y[order[:144]])
    np.testing.assert_array_equal(ds.train.x, x[order[144:]])
    np.testing.assert_array_equal(ds.train.y, y[order[144:]])


def test_an_image_folder_is_read_as_a_data_set(tmp_path, write_folder):
    """A folder path is read by tfnn.data.folder: its classes, sizes and shape. Catches the
    folder test negated and the folder builder not given the path."""
    root = write_folder(tmp_path / "images")
    ds = data.load(str(root), seed=0)
    assert ds.name == str(root) and ds.task == data.Task(data.CLASSES, 3)
    assert (data.size(ds.train), data.size(ds.validation), data.size(ds.test)) == (16, 2, 6)
    assert ds.input_shape == (12, 10, 3)


def test_only_the_full_stop_is_stripped_from_tfdss_reason(data_dir, monkeypatch):
    """The reason keeps its last word whatever its letters: a stand-in TFDS refusal ending
    in "X." loses only the ".". Catches a strip of other characters ("XX.XX")."""

    def refuse(name, data_dir=None):
        raise ValueError("Builder name ends in X.\nSecond line.")

    monkeypatch.setattr(loading._tfds, "builder", refuse)
    with pytest.raises(ValueError, match=r"^Unknown dataset 'setX' \(Builder name ends in X\):"):
        data.load("setX", seed=0, data_dir=data_dir)
