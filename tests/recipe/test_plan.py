"""The plan: facts settled once from the options and the data set, before anything is written."""

import types

import pytest

from tfnn.recipe import plan
from tfnn.recipe.options import DEFAULT_CNN, Options

DIGITS = types.SimpleNamespace(input_shape=(8, 8, 1))  # images of 8 × 8 pixels
MNIST1D = types.SimpleNamespace(input_shape=(40,))  # signals of length 40


@pytest.mark.parametrize(
    "dataset, cnn",
    [
        (DIGITS, "C-8-3-1-same,M-8-8,F"),  # down to exactly one pixel
        (DIGITS, "C-8-8-1-valid,F"),  # a 'valid' kernel as large as the image
        (DIGITS, "C-8-3-8-same,C-8-3-8-same,G"),  # 'same' keeps one pixel at any stride
        (MNIST1D, "C-8-5-4-valid,M-9-1,F"),  # (40 - 5) // 4 + 1 = 9, then 1 position
        (MNIST1D, DEFAULT_CNN),
        (DIGITS, DEFAULT_CNN),
    ],
)
def test_a_cnn_spec_that_keeps_one_position_is_accepted(dataset, cnn):
    plan.check_cnn(Options(model="cnn", cnn=cnn), dataset)


@pytest.mark.parametrize(
    "dataset, cnn, message",
    [
        (DIGITS, "C-8-3-1-same,M-8-8,M-8-8,F", "layer 3 'M-8-8' maps shape (1, 1, 8) to (0, 0, 8)"),
        (DIGITS, "C-8-9-1-valid,F", "layer 1 'C-8-9-1-valid' maps shape (8, 8, 1) to (0, 0, 8)"),
        (MNIST1D, "C-8-5-4-valid,M-10-1,F", "layer 2 'M-10-1' maps shape (9, 8) to (0, 8)"),
        (MNIST1D, "R-[C-8-3-1-same]", "layer 1 'R-[C-8-3-1-same]' maps shape (40, 1) to (40, 8)"),
    ],
)
def test_a_cnn_spec_past_one_position_is_refused_naming_the_layer(dataset, cnn, message):
    with pytest.raises(ValueError) as error:
        plan.check_cnn(Options(model="cnn", cnn=cnn), dataset)
    text = str(error.value)
    assert text.startswith(f"Expected a CNN spec for inputs of shape {dataset.input_shape}: ")
    assert message in text and text.endswith(f"Received: cnn={cnn!r}") and "\n" not in text


def test_the_mlp_has_no_spec_to_check():
    plan.check_cnn(Options(model="mlp"), MNIST1D)
