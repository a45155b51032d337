"""tfnn.experiments.training: the TensorFlow side of the experiments' measurements."""

import numpy as np

from tfnn.experiments import training


def test_a_seed_is_loaded_once_whatever_cut_of_its_training_split_is_asked(monkeypatch):
    """Catches the cache keyed by the cut too (a pool worker serving several experiments
    then reads MNIST-1D again for every item: ~1 s of three seeds each) or a cut that takes
    other examples than the first ones of the seed's split."""
    loads = []

    def load(name, *, seed):
        loads.append((name, seed))
        x = np.arange(12.0).reshape(6, 2) + seed
        arrays = training.data.Arrays(x, np.arange(6))
        return training.data.DataSet(name, None, arrays, arrays, arrays)

    monkeypatch.setattr(training.data, "load", load)
    training._loaded.cache_clear()
    try:
        whole = training.dataset("mnist1d", 1)
        first_four = training.dataset("mnist1d", 1, 4)
        first_two = training.dataset("mnist1d", 1, 2)
        other_seed = training.dataset("mnist1d", 2, 4)
        assert loads == [("mnist1d", 1), ("mnist1d", 2)]
        np.testing.assert_array_equal(first_four.train.x, whole.train.x[:4])
        np.testing.assert_array_equal(first_two.train.y, [0, 1])
        assert first_four.test is whole.test and other_seed.train.x[0, 0] == 2.0
    finally:
        training._loaded.cache_clear()
