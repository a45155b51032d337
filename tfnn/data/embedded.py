"""Data sets that need no network, as TFDS builders.

Importing this module registers four builders with TFDS, so `tfds.load(name)`
works offline for them (the first load generates the TFRecords in
`data_dir`, later loads read them):

    mnist1d        40-sample 1D signals, 10 classes, 4,000 train / 1,000 test:
                   `mnist1d.data.make_dataset()`, which
                   reproduces the published MNIST-1D (Greydanus & Kobak, 2024)
    digits         scikit-learn's 8×8 grey images of digits, 10 classes
    diabetes       scikit-learn's diabetes progression, 10 features, a real target
    breast_cancer  scikit-learn's Wisconsin breast cancer, 30 features, binary

The scikit-learn sets are read from tfnn's own copy of scikit-learn's arrays
(`ARRAYS`, written by tools/embedded_data.py; sources and licences in its
README.md), so scikit-learn is never imported. They have no test split of their
own: a fixed 20% (the same for every seed) is set aside as `test`.

Every builder yields the supervised pair ("features", "label"); the label is a
`ClassLabel` for classes and a float scalar for regression, which is how the
trainer picks the output function (docs/lecture.md A1).
"""

import abc
import pathlib

import numpy as np
import tensorflow_datasets as tfds

TEST_FRACTION = 0.2
_SPLIT_SEED = 0  # fixes the scikit-learn test splits once and for all


# tfnn's copies of scikit-learn's bundled sets: <name>.npz holding x and y as load_<name> gives.
ARRAYS = pathlib.Path(__file__).with_name("embedded_arrays")
SKLEARN_SETS = ("digits", "diabetes", "breast_cancer")


def arrays(name):
    """(x, y) of one of `SKLEARN_SETS`, equal to scikit-learn's (dtype, shape, values):
    digits' `images` and `target`, the others' `load_<name>(return_X_y=True)`."""
    with np.load(ARRAYS / f"{name}.npz") as stored:  # numpy refuses pickled objects by default
        return stored["x"], stored["y"]


def _fixed_test_split(x, y):
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(y))
    n_test = int(round(TEST_FRACTION * len(y)))
    test, train = order[:n_test], order[n_test:]
    return (x[train], y[train]), (x[test], y[test])


class _InMemoryBuilder(tfds.core.GeneratorBasedBuilder):
    """A builder whose examples come from arrays made by `_arrays()`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    DESCRIPTION = ""
    FEATURE_SHAPE = ()
    LABEL = None  # a tfds feature for the label

    @abc.abstractmethod
    def _arrays(self):
        """{"train": (x, y), "test": (x, y)} as numpy arrays."""

    def _info(self):
        return self.dataset_info_from_configs(
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "features": tfds.features.Tensor(shape=self.FEATURE_SHAPE, dtype=np.float32),
                    "label": self.LABEL,
                }
            ),
            supervised_keys=("features", "label"),
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(*xy) for split, xy in self._arrays().items()}

    def _generate_examples(self, x, y):
        for i, (features, label) in enumerate(zip(x, y, strict=True)):
            yield i, {"features": features.astype(np.float32), "label": label}


class Mnist1d(_InMemoryBuilder):
    DESCRIPTION = "MNIST-1D: 1D signals of the ten digit templates, shifted, scaled, noised."
    FEATURE_SHAPE = (40,)
    LABEL = tfds.features.ClassLabel(num_classes=10)

    def _arrays(self):
        # Imported only to generate the set once per data folder: 1.2 s.
        from mnist1d.data import make_dataset

        data = make_dataset()  # its default arguments are the published set's
        return {"train": (data["x"], data["y"]), "test": (data["x_test"], data["y_test"])}


class Digits(_InMemoryBuilder):
    DESCRIPTION = "scikit-learn's 8x8 digits, grey levels scaled from 0..16 to [0, 1]."
    FEATURE_SHAPE = (8, 8, 1)
    LABEL = tfds.features.ClassLabel(num_classes=10)

    def _arrays(self):
        images, labels = arrays("digits")
        train, test = _fixed_test_split((images / 16.0)[..., None], labels)
        return {"train": train, "test": test}


class Diabetes(_InMemoryBuilder):
    DESCRIPTION = "scikit-learn's diabetes: disease progression after one year (regression)."
    FEATURE_SHAPE = (10,)
    LABEL = tfds.features.Scalar(dtype=np.float32)

    def _arrays(self):
        x, y = arrays("diabetes")
        train, test = _fixed_test_split(x, y.astype(np.float32))
        return {"train": train, "test": test}


class BreastCancer(_InMemoryBuilder):
    DESCRIPTION = "scikit-learn's Wisconsin breast cancer: malignant (0) or benign (1)."
    FEATURE_SHAPE = (30,)
    LABEL = tfds.features.ClassLabel(num_classes=2)

    def _arrays(self):
        x, y = arrays("breast_cancer")
        train, test = _fixed_test_split(x, y)
        return {"train": train, "test": test}


NAMES = ("mnist1d", "digits", "diabetes", "breast_cancer")
