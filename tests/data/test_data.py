import hashlib
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfnn import data
from tfnn.data import embedded

ROOT = pathlib.Path(__file__).resolve().parents[2]


EXPECTED = {
    # name: (task kind, classes, feature shape, train + validation, test, the SHA-256 of the
    # train, validation and test arrays at seed 0 as scikit-learn's load_* made them)
    "mnist1d": (data.CLASSES, 10, (40,), 4000, 1000, None),
    "digits": (
        *(data.CLASSES, 10, (8, 8, 1), 1438, 359),
        "3f02a2f1911f78dc75b988fa521a2b37152edfd3112db08a5f9d35d743cd7712",
    ),
    "diabetes": (
        *(data.REGRESSION, None, (10,), 354, 88),
        "df123558d3b84ba7df63e4b8c5243dcb053ff2fc5d9298112066d0cec208f0c1",
    ),
    "breast_cancer": (
        *(data.BINARY, 2, (30,), 455, 114),
        "930bdca54c6543d22be6bcfcec38d4e8a13329491d6569167513d0e10b28d236",
    ),
}


@pytest.mark.parametrize("name", data.EMBEDDED)
def test_embedded_sets_load_offline_with_their_task_and_sizes(name, data_dir):
    kind, classes, shape, n_train, n_test, digest = EXPECTED[name]
    ds = data.load(name, seed=0, validation_fraction=0.1, data_dir=data_dir)
    assert ds.task == data.Task(kind, classes)
    assert ds.input_shape == shape
    assert len(ds.train[1]) + len(ds.validation[1]) == n_train
    assert len(ds.validation[1]) == round(0.1 * n_train)
    assert len(ds.test[1]) == n_test
    assert ds.train[0].dtype == np.float32
    assert ds.train[1].dtype == (np.float32 if kind == data.REGRESSION else np.int64)
    if digest:  # the very examples, in the very splits, that scikit-learn's arrays gave
        arrays = (*ds.train, *ds.validation, *ds.test)
        assert hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest() == digest


@pytest.mark.parametrize("name", embedded.SKLEARN_SETS)
def test_the_embedded_copies_are_scikit_learns_arrays(name):
    from sklearn import datasets

    loaded = getattr(datasets, f"load_{name}")()
    reference = (loaded.images if name == "digits" else loaded.data, loaded.target)
    for array, expected in zip(embedded.arrays(name), reference, strict=True):
        assert (array.dtype, array.shape) == (expected.dtype, expected.shape)
        assert array.tobytes() == expected.tobytes()


def test_the_tool_writes_the_embedded_copies_again_from_scikit_learn(tmp_path):
    spec = importlib.util.spec_from_file_location("embedded_data", ROOT / "tools/embedded_data.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    first = tool.write(tmp_path / "a")
    assert [path.name for path in first] == [f"{n}.npz" for n in embedded.SKLEARN_SETS]
    for path in first:
        with np.load(path) as written, np.load(embedded.ARRAYS / path.name) as shipped:
            assert sorted(written) == sorted(shipped) == ["x", "y"]
            for key in ("x", "y"):
                assert written[key].dtype == shipped[key].dtype
                np.testing.assert_array_equal(written[key], shipped[key])
    # Written twice, the same bytes: a regenerated copy shows in git only if the data changed.
    for path, again in zip(first, tool.write(tmp_path / "b"), strict=True):
        assert path.read_bytes() == again.read_bytes()


# Imports tfnn's recipe and loads the default set and digits (generating both in a fresh data
# folder) where `import sklearn` fails: Keras tries it on its own at import and goes on
# without it; tfnn must not need it.
WITHOUT_SKLEARN = """
import importlib.abc, sys
class NoSklearn(importlib.abc.MetaPathFinder):
    tried = []
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "sklearn":
            self.tried.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoSklearn())
import tfnn.recipe.train
from tfnn import data
sizes = []
for name in ("mnist1d", "digits"):
    ds = data.load(name, seed=0, data_dir=sys.argv[1])
    sizes += [len(ds.train[1]) + len(ds.validation[1]), len(ds.test[1])]
print(*sizes, "sklearn" in sys.modules, *NoSklearn.tried[:1])
"""


def test_the_default_set_and_digits_load_where_scikit_learn_cannot_be_imported(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_SKLEARN, str(tmp_path / "tfds")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # Keras's scikit-learn wrappers tried (the blocker is in effect) and nothing else needed it.
    assert result.stdout.splitlines()[-1] == "4000 1000 1438 359 False sklearn"


def test_mnist1d_is_the_published_data_set(data_dir):
    from mnist1d.data import get_dataset_args, make_dataset

    reference = make_dataset(get_dataset_args())
    ds = data.load("mnist1d", seed=0, data_dir=data_dir)
    x = np.concatenate([ds.train[0], ds.validation[0]])
    y = np.concatenate([ds.train[1], ds.validation[1]])
    # TFDS stores examples in its own order: compare as sorted sets of rows.
    order, reference_order = np.lexsort(x.T), np.lexsort(reference["x"].T)
    np.testing.assert_allclose(x[order], reference["x"][reference_order], rtol=1e-6)
    np.testing.assert_array_equal(y[order], reference["y"][reference_order])
    np.testing.assert_array_equal(np.sort(ds.test[1]), np.sort(reference["y_test"]))


def test_validation_split_is_fixed_by_the_seed(data_dir):
    a, b = (data.load("breast_cancer", seed=3, data_dir=data_dir) for _ in range(2))
    c = data.load("breast_cancer", seed=4, data_dir=data_dir)
    np.testing.assert_array_equal(a.validation[0], b.validation[0])
    assert not np.array_equal(a.validation[0], c.validation[0])
    np.testing.assert_array_equal(a.test[0], c.test[0])  # the test split never moves


def test_catalog_data_sets_go_through_tfds(data_dir):
    with tfds.testing.mock_data(num_examples=30):
        ds = data.load("mnist", seed=0, data_dir=data_dir)
    assert ds.task == data.Task(data.CLASSES, 10)
    assert ds.input_shape == (28, 28, 1)
    assert ds.train[0].dtype == np.float32 and 0.0 <= ds.train[0].min() <= ds.train[0].max() <= 1.0
    assert len(ds.train[1]) + len(ds.validation[1]) == 30


ALLOWED = (
    "expected one of mnist1d, digits, diabetes, breast_cancer, a TFDS catalog name "
    "(name[/config][:version]) or an image folder path. Received: dataset="
)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("no_such_set", "not in TFDS's catalog"),
        ("huggingface:mnist", "a community data set of another hub"),
        ("kaggle:x", "a community data set of another hub"),
        ("mnist[:10]", "Parsing builder name string mnist[:10] failed"),
        ("a b", "Parsing builder name string a b failed"),
    ],
)
def test_a_name_that_is_no_data_set_is_refused_in_one_line_naming_it(name, why, data_dir):
    """Catches only TFDS's DatasetNotFoundError turned into the one line: huggingface:mnist
    ended in ModuleNotFoundError (huggingface_hub), and mnist[:10] or 'a b' in TFDS's 15-line
    ValueError about its name format."""
    with pytest.raises(ValueError) as error:
        data.load(name, seed=0, data_dir=data_dir)
    assert str(error.value) == f"Unknown dataset {name!r} ({why}): {ALLOWED}{name!r}"
    assert list(embedded.NAMES) == ["mnist1d", "digits", "diabetes", "breast_cancer"]


def test_a_catalog_name_with_a_version_is_not_a_community_name(data_dir):
    with tfds.testing.mock_data(num_examples=10):
        ds = data.load("mnist:3.*.*", seed=0, data_dir=data_dir)
    assert ds.input_shape == (28, 28, 1)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2])
def test_bad_validation_fraction_is_refused(fraction, data_dir):
    with pytest.raises(ValueError, match="validation_fraction"):
        data.load("digits", seed=0, validation_fraction=fraction, data_dir=data_dir)


@pytest.mark.parametrize("in_memory_bytes", [None, 0])
def test_a_validation_fraction_that_leaves_no_training_example_is_refused(
    in_memory_bytes, data_dir
):
    """breast_cancer's train split holds 455: 454/455 keeps one example to train on, 0.9999
    holds out all 455. Catches `n_validation = max(1, round(f * n))` taken without checking
    that training keeps any (the fit then fails on total_steps=0 after the run folder is made),
    in memory and streamed."""
    kept = data.load(
        "breast_cancer",
        seed=0,
        validation_fraction=454 / 455,
        data_dir=data_dir,
        in_memory_bytes=in_memory_bytes,
    )
    assert (kept.train.size, kept.validation.size) == (1, 454)
    with pytest.raises(ValueError, match="validation_fraction=0.9999") as error:
        data.load(
            "breast_cancer",
            seed=0,
            validation_fraction=0.9999,
            data_dir=data_dir,
            in_memory_bytes=in_memory_bytes,
        )
    assert "455 examples, so training keeps 0" in str(error.value)
    assert "\n" not in str(error.value)


def test_training_on_an_empty_split_is_refused_before_anything_is_written(tmp_path, data_dir):
    """`tfnn.train` refuses the fraction before the run folder or its resume state exist
    (catches the data checked only when the fit starts, after lifecycle.json "prepared")."""
    import tfnn

    with pytest.raises(ValueError, match="validation_fraction=0.9999"):
        tfnn.train(
            dataset="breast_cancer",
            model="mlp",
            hidden_layers=(8,),
            epochs=1,
            validation_fraction=0.9999,
            data_dir=data_dir,
            logdir=str(tmp_path / "logs"),
            export_dir=str(tmp_path / "saved_models"),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_batches_are_shuffled_reproducibly_and_cover_every_example():
    x, y = np.arange(20, dtype="float32")[:, None], np.arange(20)
    first = [b[1].numpy().tolist() for b in data.batches(x, y, 6, shuffle_seed=1)]
    again = [b[1].numpy().tolist() for b in data.batches(x, y, 6, shuffle_seed=1)]
    assert first == again
    assert sorted(sum(first, [])) == list(range(20))
    assert sum(first, []) != list(range(20))
    assert [len(b) for b in first] == [6, 6, 6, 2]


def bootstrap_sample(seed, n=200, batch_size=32, epochs=1):
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(n)
    batches = data.batches(x, y, batch_size, shuffle_seed=5, bootstrap_seed=seed)
    epochs = [[b for b in batches] for _ in range(epochs)]
    return [
        (np.concatenate([b[0].numpy() for b in e]), np.concatenate([b[1].numpy() for b in e]))
        for e in epochs
    ]


def test_a_bootstrap_sample_has_the_data_sets_size_and_repeats():
    [(x, y)] = bootstrap_sample(seed=3)
    assert len(y) == 200 and x.shape == (200, 3)
    np.testing.assert_array_equal(x[:, 0], y)  # inputs stay with their labels
    distinct = len(np.unique(y))
    # Each example is left out with probability (1 − 1/n)^n ≈ e^−1 ≈ 0.368.
    assert 100 < distinct < 150
    assert set(y) <= set(range(200))


def test_a_bootstrap_sample_is_fixed_by_its_seed_and_reshuffled_every_epoch():
    (x1, y1), (x2, y2) = bootstrap_sample(seed=3, epochs=2)
    assert not np.array_equal(y1, y2)  # a new order every epoch …
    np.testing.assert_array_equal(np.sort(y1), np.sort(y2))  # … of the same sample
    [(x3, y3)] = bootstrap_sample(seed=3)
    np.testing.assert_array_equal(np.sort(y1), np.sort(y3))
    [(x4, y4)] = bootstrap_sample(seed=4)
    assert not np.array_equal(np.sort(y1), np.sort(y4))


def test_a_catalog_set_that_cannot_be_downloaded_fails_at_once_in_one_line(data_dir, monkeypatch):
    """No retries for minutes: an unreachable download host is one ValueError naming the set."""
    import socket

    with socket.socket() as closed:  # a local port nobody listens on: refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(data.loading, "DOWNLOAD_HOST", ("127.0.0.1", port))
    with pytest.raises(ValueError, match=r"'mnist'.*unreachable") as error:
        data.load("mnist", seed=0, data_dir=data_dir)
    assert "\n" not in str(error.value)


def epochs_of(batches, epochs, steps):
    """The labels of `epochs` epochs of `steps` batches each from one endless iterator."""
    iterator = iter(batches)
    return [[next(iterator)[1].numpy().tolist() for _ in range(steps)] for _ in range(epochs)]


def test_an_endless_pipeline_started_at_epoch_k_continues_an_uninterrupted_one():
    """A resumed run (Keras's BackupAndRestore at epoch k) sees epoch k's order, not epoch 0's."""
    x, y = np.arange(20, dtype="float32")[:, None], np.arange(20)
    uninterrupted = epochs_of(data.batches(x, y, 6, shuffle_seed=1, repeat=True), 5, 4)
    resumed = epochs_of(data.batches(x, y, 6, shuffle_seed=1, repeat=True, first_epoch=3), 2, 4)
    assert resumed == uninterrupted[3:]
    orders = [sum(epoch, []) for epoch in uninterrupted]
    assert len({tuple(order) for order in orders}) == 5  # every epoch its own order …
    assert all(sorted(order) == list(range(20)) for order in orders)  # … of every example
    with pytest.raises(ValueError, match="first_epoch=-1"):
        data.batches(x, y, 6, shuffle_seed=1, repeat=True, first_epoch=-1)


# A process that prepares digits in a data folder, its preparation slowed so that two started
# together are both preparing at once; it prints the sizes and a checksum of what it read.
PREPARE = """
import sys, time
from tfnn import data
from tfnn.data import embedded
arrays = embedded.Digits._arrays
embedded.Digits._arrays = lambda self: (time.sleep(3), arrays(self))[1]
ds = data.load("digits", seed=0, data_dir=sys.argv[1])
print(len(ds.train[1]), len(ds.test[1]), float(ds.train[0].sum() + ds.test[0].sum()))
"""


def test_two_processes_preparing_one_data_folder_at_once_both_read_it(tmp_path):
    environment = {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-c", PREPARE, str(tmp_path / "tfds")]
    started = [
        subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    results = [(*p.communicate(timeout=300), p.returncode) for p in started]
    assert [code for _, _, code in results] == [0, 0], [err[-800:] for _, err, _ in results]
    first, second = (out.decode().splitlines()[-1].split() for out, _, _ in results)
    assert first == second and first[:2] == ["1294", "359"]
