"""The embedded data sets' builders: the fixed test split and the examples they write
(tests/data/test_data.py loads each set whole and checks its arrays' checksums)."""

import numpy as np
import pytest

from tfnn.data import embedded


@pytest.mark.parametrize("n, n_test", [(8, 2), (7, 1), (10, 2)])
def test_the_fixed_test_split_holds_out_the_rounded_fifth(n, n_test):
    """round(0.2 · 8) = 2 (1.6 is not floored to 1); the rest is the training split."""
    x, y = np.arange(n * 2).reshape(n, 2), np.arange(n)
    (x_train, y_train), (x_test, y_test) = embedded._fixed_test_split(x, y)
    assert len(y_test) == n_test and len(y_train) == n - n_test
    assert sorted([*y_train, *y_test]) == list(range(n))
    np.testing.assert_array_equal(x_test[:, 0], 2 * y_test)  # inputs stay with their labels
    np.testing.assert_array_equal(x_train[:, 0], 2 * y_train)
    again = embedded._fixed_test_split(x, y)  # fixed: the same whatever the run
    np.testing.assert_array_equal(again[1][1], y_test)


def test_the_examples_are_keyed_by_position_with_float32_features():
    builder = embedded.Diabetes.__new__(embedded.Diabetes)
    x, y = np.array([[1, 2], [3, 4]], np.float64), np.array([0.5, 1.5], np.float32)
    examples = list(builder._generate_examples(x, y))
    assert [key for key, _ in examples] == [0, 1]
    for (_, example), features, label in zip(examples, x, y, strict=True):
        assert example["features"].dtype == np.float32
        np.testing.assert_array_equal(example["features"], features)
        assert example["label"] == label


def test_arrays_of_unequal_lengths_are_refused_not_cut_to_the_shorter():
    builder = embedded.Diabetes.__new__(embedded.Diabetes)
    with pytest.raises(ValueError, match="zip"):
        list(builder._generate_examples(np.zeros((3, 2)), np.zeros(2)))


@pytest.mark.parametrize(
    "builder, shape, labels",
    [
        (embedded.Mnist1d, (40,), 10),
        (embedded.Digits, (8, 8, 1), 10),
        (embedded.Diabetes, (10,), None),
        (embedded.BreastCancer, (30,), 2),
    ],
)
def test_each_builder_declares_float32_features_of_its_shape_and_its_label(
    tmp_path, builder, shape, labels
):
    info = builder(data_dir=str(tmp_path)).info
    assert info.supervised_keys == ("features", "label")
    assert info.features["features"].shape == shape
    assert info.features["features"].dtype == np.float32
    label = info.features["label"]
    if labels is None:
        assert label.dtype == np.float32 and label.shape == ()
    else:
        assert label.num_classes == labels
    assert str(info.version) == "1.0.0"
    assert info.description == builder.DESCRIPTION and builder.DESCRIPTION


def test_digits_grey_levels_are_scaled_to_0_1_with_a_channel_axis(tmp_path):
    builder = embedded.Digits(data_dir=str(tmp_path))
    splits = builder._arrays()
    images, _ = embedded.arrays("digits")
    x = np.concatenate([splits["train"][0], splits["test"][0]])
    assert x.shape == (len(images), 8, 8, 1)
    assert x.min() == 0.0 and x.max() == 1.0  # 16 → exactly 1


@pytest.mark.parametrize(
    "builder, name, label_dtype",
    [
        (embedded.Diabetes, "diabetes", np.float32),
        (embedded.BreastCancer, "breast_cancer", np.int64),
    ],
)
def test_the_scikit_learn_sets_split_their_own_arrays(tmp_path, builder, name, label_dtype):
    """Train and test partition scikit-learn's rows, test a fifth of them, labels as the
    task needs (a regression's float32 target)."""
    x, y = embedded.arrays(name)
    splits = builder(data_dir=str(tmp_path))._arrays()
    assert sorted(splits) == ["test", "train"]
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    assert len(y_test) == round(0.2 * len(y)) and len(y_train) + len(y_test) == len(y)
    assert y_train.dtype == label_dtype
    rows = np.concatenate([x_train, x_test])
    np.testing.assert_array_equal(rows[np.lexsort(rows.T)], x[np.lexsort(x.T)])
    np.testing.assert_array_equal(np.sort(np.concatenate([y_train, y_test])), np.sort(y))


def test_mnist1d_is_made_with_the_published_arguments(tmp_path):
    from mnist1d.data import get_dataset_args, make_dataset

    reference = make_dataset(get_dataset_args())
    splits = embedded.Mnist1d(data_dir=str(tmp_path))._arrays()
    for split, (x_key, y_key) in {"train": ("x", "y"), "test": ("x_test", "y_test")}.items():
        np.testing.assert_array_equal(splits[split][0], reference[x_key])
        np.testing.assert_array_equal(splits[split][1], reference[y_key])
