"""The plan: facts settled once from the options and the data set, before anything is written."""

import types

import numpy as np
import pytest

from tfnn import data
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


# Data sets of each input kind and task, tiny and in memory.
def arrays(rng, n, shape, labels):
    return data.Arrays(rng.normal(size=(n, *shape)).astype(np.float32), labels(rng, n))


def tiny(shape=(40,), task=None, n=10):
    """A DataSet of `n` training examples of `shape` (10 classes unless `task` says)."""
    task = task or data.Task(data.CLASSES, 10)
    if task.kind == data.REGRESSION:
        labels = lambda rng, n: rng.normal(5.0, 2.0, n).astype(np.float32)  # noqa: E731
    else:
        labels = lambda rng, n: rng.integers(0, task.num_classes, n)  # noqa: E731
    rng = np.random.default_rng(0)
    return data.DataSet("tiny", task, *(arrays(rng, m, shape, labels) for m in (n, 3, 3)))


def described(transforms):
    """Each transform as (its class, its settings): what a test can compare."""
    return [(type(t).__name__, vars(t)) for t in transforms]


@pytest.mark.parametrize(
    "shape, kind",
    [
        ((40,), "signals"),
        ((8, 8), "signals"),
        ((8, 8, 1), "images"),
        ((8, 8, 3), "rgb images"),
        ((8, 8, 4), "images"),
    ],
)
def test_the_input_kind_is_read_from_the_shape(shape, kind):
    """Three axes are images; three channels exactly are RGB."""
    assert plan.input_kind(shape) == kind


def test_no_augmentation_no_noise_no_mixup_is_no_transform():
    assert plan.transforms_for(Options(), tiny()) == []


def test_signals_take_shift_stretch_scale_then_noise_in_that_order():
    options = Options(augment={"shift": 3, "stretch": 0.1, "scale": 0.2}, noise=0.5)
    assert described(plan.transforms_for(options, tiny())) == [
        ("SignalShift", {"max_shift": 3, "fill_mode": "constant"}),
        ("TimeStretch", {"max_stretch": 0.1, "fill_mode": "constant"}),
        ("AmplitudeScale", {"max_scale": 0.2}),
        ("Noise", {"stddev": 0.5}),
    ]


def test_noise_alone_turns_the_transforms_on_with_the_others_at_zero():
    """Catches the transforms kept off unless an augmentation is named."""
    assert described(plan.transforms_for(Options(noise=0.5), tiny())) == [
        ("SignalShift", {"max_shift": 0, "fill_mode": "constant"}),
        ("TimeStretch", {"max_stretch": 0.0, "fill_mode": "constant"}),
        ("AmplitudeScale", {"max_scale": 0.0}),
        ("Noise", {"stddev": 0.5}),
    ]


def test_grey_images_take_the_affine_brightness_contrast_and_mixup_last():
    options = Options(
        augment={
            "translate": 0.1,
            "rotate": 10.0,
            "zoom": 0.2,
            "flip": True,
            "brightness": 0.3,
            "contrast": 0.4,
        },
        mixup=0.2,
    )
    affine = {
        "translate": 0.1,
        "rotate": 10.0,
        "zoom": 0.2,
        "flip": True,
        "fill_mode": "constant",
        "fill_value": 0.0,
    }
    assert described(plan.transforms_for(options, tiny((8, 8, 1)))) == [
        ("Affine", affine),
        ("Brightness", {"max_delta": 0.3}),
        ("Contrast", {"max_factor": 0.4}),
        ("Noise", {"stddev": 0.0}),
        ("MixUp", {"alpha": 0.2, "num_classes": 10}),
    ]


@pytest.mark.parametrize(
    "shape, augment, message",
    [
        (
            (40,),
            {"flip": True},
            "Expected an augmentation for signals of shape (40,): flip "
            "applies to images. Received: augment={'flip': True}",
        ),
        (
            (8, 8, 1),
            {"hue": 0.1},
            "Expected an augmentation for images of shape (8, 8, 1): hue "
            "applies to rgb images. Received: augment={'hue': 0.1}",
        ),
        (
            (8, 8, 3),
            {"shift": 2},
            "Expected an augmentation for rgb images of shape (8, 8, 3): "
            "shift applies to signals. Received: augment={'shift': 2}",
        ),
    ],
)
def test_an_augmentation_for_other_inputs_is_refused_naming_it(shape, augment, message):
    with pytest.raises(ValueError) as error:
        plan.transforms_for(Options(augment=augment), tiny(shape))
    assert str(error.value) == message


@pytest.mark.parametrize("kind", [data.REGRESSION, data.BINARY])
def test_mixup_needs_classes(kind):
    task = data.Task(kind, 2 if kind == data.BINARY else None)
    with pytest.raises(ValueError) as error:
        plan.transforms_for(Options(mixup=0.2), tiny(task=task))
    assert str(error.value) == (
        f"Expected mixup 0 for a data set without classes ({kind}). Received: mixup=0.2"
    )


@pytest.mark.parametrize(
    "steps, at_most, expected",
    [(12, 5, 4), (12, 4, 4), (12, 3, 3), (12, 12, 12), (12, 13, 12), (7, 6, 1), (7, 1, 1)],
)
def test_steps_per_execution_is_the_largest_divisor_up_to_the_limit(steps, at_most, expected):
    """At the limit (4 of 12 and 12 of 12 divide: taken) and past it."""
    assert plan.steps_per_execution(steps, at_most, "default") == expected


def test_a_mirrored_strategy_runs_one_step_per_call():
    assert plan.steps_per_execution(12, 4, "mirrored") == 1
    assert plan.steps_per_execution(12, 4, "multi_worker") == 4


@pytest.mark.parametrize("n, batch, steps", [(10, 5, 2), (10, 4, 3), (10, 10, 1), (10, 11, 1)])
def test_an_epoch_is_the_training_split_in_batches_the_last_one_partial(n, batch, steps):
    the_plan = plan.make_plan(Options(batch_size=batch), tiny(n=n), "strategy")
    assert the_plan.steps_per_epoch == steps
    assert the_plan.strategy == "strategy"


def test_the_plan_settles_objective_transforms_and_steps_per_execution():
    options = Options(batch_size=2, steps_per_execution=4, label_smoothing=0.1, mixup=0.2)
    the_plan = plan.make_plan(options, tiny(n=12), None)
    assert the_plan.options is options
    assert the_plan.steps_per_execution == 3  # 6 steps: 3 divides, 4 does not
    assert the_plan.objective.distributions is True
    assert the_plan.objective.label_smoothing == 0.1
    assert [type(t).__name__ for t in the_plan.transforms] == [
        "SignalShift",
        "TimeStretch",
        "AmplitudeScale",
        "Noise",
        "MixUp",
    ]
    assert isinstance(the_plan.transforms, tuple)


def test_without_mixup_the_objective_takes_class_indices():
    the_plan = plan.make_plan(Options(), tiny(), None)
    assert the_plan.objective.distributions is False


def test_calibrate_is_refused_for_a_regression():
    task = data.Task(data.REGRESSION)
    with pytest.raises(ValueError) as error:
        plan.make_plan(Options(calibrate=True), tiny(task=task), None)
    assert str(error.value) == (
        "Expected False for a regression data set (temperature scaling rescales a "
        "classifier's logits). Received: calibrate=True"
    )


def test_calibrate_is_taken_for_a_binary_task():
    task = data.Task(data.BINARY, 2)
    assert plan.make_plan(Options(calibrate=True), tiny(task=task), None).options.calibrate


def test_make_plan_checks_the_cnn_against_the_inputs():
    with pytest.raises(ValueError, match="Received: cnn='C-8-9-1-valid,F'"):
        plan.make_plan(Options(model="cnn", cnn="C-8-9-1-valid,F"), tiny((8, 8, 1)), None)


@pytest.mark.parametrize(
    "task, function",
    [
        (data.Task(data.CLASSES, 10), "softmax"),
        (data.Task(data.BINARY, 2), "sigmoid"),
        (data.Task(data.REGRESSION), "linear"),
    ],
)
def test_the_output_function_is_the_tasks(task, function):
    assert plan.make_plan(Options(), tiny(task=task), None).output_function == function


def test_a_regression_target_is_scaled_by_its_training_mean_and_std():
    dataset = tiny(task=data.Task(data.REGRESSION))
    y = dataset.train.y
    assert plan.make_plan(Options(), dataset, None).target_scale == pytest.approx(
        (float(y.mean()), float(y.std()))
    )
    assert plan.make_plan(Options(), tiny(), None).target_scale is None


@pytest.mark.parametrize(
    "model, shape, axis",
    [
        ("mlp", (40,), 0),
        ("cnn", (40,), None),
        ("cnn", (8, 8), None),
        ("mlp", (8, 8), "none"),
        ("cnn", (8, 8, 1), "none"),
    ],
)
def test_input_statistics_where_the_model_standardizes_its_inputs(model, shape, axis):
    """The MLP standardizes vectors per feature; the CNN standardizes signals (up to two
    axes) over all values; images are neither's."""
    dataset = tiny(shape)
    options = Options(model=model, cnn="F") if model == "cnn" else Options(model="mlp")
    found = plan.make_plan(options, dataset, None).input_statistics
    if axis == "none":
        assert found is None
        return
    x = dataset.train.x.astype(np.float64)
    np.testing.assert_allclose(found[0], x.mean(axis=axis))
    np.testing.assert_allclose(found[1], x.var(axis=axis))


def test_sample_is_the_first_training_examples():
    dataset = tiny()
    x, y = plan.make_plan(Options(), dataset, None).sample(4)
    np.testing.assert_array_equal(x, dataset.train.x[:4])
    np.testing.assert_array_equal(y, dataset.train.y[:4])


@pytest.mark.parametrize("mixup, gold_shape", [(0.0, (2,)), (0.2, (2, 10))])
def test_batches_carry_one_hot_gold_under_mixup(mixup, gold_shape):
    the_plan = plan.make_plan(Options(batch_size=2, mixup=mixup), tiny(), None)
    x, y = next(iter(the_plan.batches(the_plan.dataset.validation)))
    assert tuple(x.shape) == (2, 40) and tuple(y.shape) == gold_shape
    first = int(the_plan.dataset.validation.y[0])
    if mixup:
        np.testing.assert_array_equal(y.numpy()[0], np.eye(10)[first])
    else:
        assert int(y.numpy()[0]) == first


def test_a_mirrored_plan_runs_one_step_per_call():
    options = Options(batch_size=2, steps_per_execution=4, strategy="mirrored")
    assert plan.make_plan(options, tiny(n=12), None).steps_per_execution == 1


def test_batches_pass_their_arguments_to_the_split():
    """repeat=True: an endless stream, past the split's 3 examples."""
    the_plan = plan.make_plan(Options(batch_size=2), tiny(), None)
    stream = the_plan.batches(the_plan.dataset.validation, repeat=True)
    assert len(list(stream.take(4))) == 4


@pytest.mark.parametrize(
    "augment",
    [
        {"translate": 0.1, "contrast": 0.2},  # the grey images' augmentations, on RGB
        {"saturation": 0.3, "hue": 0.1},  # and RGB's own
    ],
)
def test_rgb_images_take_every_image_augmentation_and_default_the_rest_to_zero(augment):
    """Catches "rgb images" not read as images too, saturation or hue not taken, or any
    amount not given not 0 by default."""
    found = described(plan.transforms_for(Options(augment=augment), tiny((8, 8, 3))))
    amount = {"translate": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0, **augment}
    assert found == [
        (
            "Affine",
            {
                "translate": amount["translate"],
                "rotate": 0.0,
                "zoom": 0.0,
                "flip": False,
                "fill_mode": "constant",
                "fill_value": 0.0,
            },
        ),
        ("Brightness", {"max_delta": 0.0}),
        ("Contrast", {"max_factor": amount["contrast"]}),
        ("Saturation", {"max_factor": amount["saturation"]}),
        ("Hue", {"max_delta": amount["hue"]}),
        ("Noise", {"stddev": 0.0}),
    ]
