"""The facts of a run, settled once from its options and its data set: the objective (loss,
metrics, monitored figure), the training transforms, the steps, the devices.

Every stage reads the `Plan`; none recomputes these facts or reads the options'
flags on its own.
"""

import dataclasses
import functools
import math

import numpy as np

from tfnn import data, export, objectives, tasks, validation
from tfnn.data import augment
from tfnn.models import spec as specs
from tfnn.recipe.options import AUGMENTATIONS


def input_kind(input_shape):
    """ "signals", "images" or "rgb images": which augmentations the inputs can take."""
    if len(input_shape) != 3:
        return "signals"
    return "rgb images" if input_shape[-1] == 3 else "images"


def transforms_for(options, dataset):
    """The training transforms the options ask for (D5), in the order they apply; [] for none.

    Raises:
        ValueError: an augmentation the data set's inputs cannot take, or mixup without classes.
    """
    kind = input_kind(dataset.input_shape)
    for name in options.augment:
        applies_to = AUGMENTATIONS[name][0]
        if applies_to not in (kind, kind.replace("rgb ", "")):
            raise ValueError(
                f"Expected an augmentation for {kind} of shape {dataset.input_shape}: {name} "
                f"applies to {applies_to}. Received: augment={options.augment!r}"
            )
    if options.mixup and dataset.task.kind != tasks.CLASSES:
        raise ValueError(
            f"Expected mixup 0 for a data set without classes ({dataset.task.kind}). "
            f"Received: mixup={options.mixup!r}"
        )
    if not (options.augment or options.noise or options.mixup):
        return []
    amount = options.augment.get
    if kind == "signals":
        transforms = [
            augment.SignalShift(amount("shift", 0)),
            augment.TimeStretch(amount("stretch", 0.0)),
            augment.AmplitudeScale(amount("scale", 0.0)),
        ]
    else:
        transforms = [
            augment.Affine(
                translate=amount("translate", 0.0),
                rotate=amount("rotate", 0.0),
                zoom=amount("zoom", 0.0),
                flip=amount("flip"),  # None: no flip (Affine takes its truth value)
            ),
            augment.Brightness(amount("brightness", 0.0)),
            augment.Contrast(amount("contrast", 0.0)),
        ]
        if kind == "rgb images":
            transforms += [augment.Saturation(amount("saturation", 0.0))]
            transforms += [augment.Hue(amount("hue", 0.0))]
    transforms.append(augment.Noise(options.noise))
    if options.mixup:
        transforms.append(augment.MixUp(options.mixup, dataset.task.num_classes))
    return transforms


def steps_per_execution(steps_per_epoch, at_most, strategy_name):
    """The largest divisor of `steps_per_epoch` up to `at_most`.

    Model.fit reads one endless stream of batches; a call that runs k steps
    runs all k, so k must divide the epoch or epochs would overrun. Keras 3.15
    cannot run several steps per call under MirroredStrategy ("You must feed a
    value for placeholder tensor", keras-team/keras#19246): there it is 1.
    """
    if strategy_name == "mirrored":
        return 1
    return max(k for k in range(1, at_most + 1) if steps_per_epoch % k == 0)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A run's options, data set and the facts derived from them once."""

    options: object  # tfnn.recipe.options.Options
    dataset: data.DataSet
    objective: objectives.Objective
    transforms: tuple
    strategy: object  # a tf.distribute.Strategy
    steps_per_epoch: int
    steps_per_execution: int

    @property
    def output_function(self):
        """The task's output function (A1): softmax, sigmoid or linear."""
        return export.OUTPUTS[self.dataset.task.kind][1]

    @functools.cached_property
    def target_scale(self):
        """(mean, std) of a regression target (the model predicts in its units), else None."""
        if self.dataset.task.kind != tasks.REGRESSION:
            return None
        mean, variance = self.dataset.train.label_moments()
        return float(mean), float(np.sqrt(variance))

    @functools.cached_property
    def input_statistics(self):
        """{"mlp": per-feature (mean, variance), "cnn": (mean, variance) of all values} of
        the training inputs where the model standardizes them (vectors; signals for the
        CNN), else None; one streaming pass for a streamed set."""
        shape = self.dataset.input_shape
        model = self.options.model
        if (model == "cnn" and len(shape) > 2) or (model != "cnn" and len(shape) > 1):
            return None
        return self.dataset.train.input_moments(axis=None if model == "cnn" else 0)

    def sample(self, n):
        """The first `n` training examples (x, y) as numpy arrays."""
        return self.dataset.train.head(n)

    def batches(self, split, **kwargs):
        """`split` (a `tfnn.data.Arrays` or `Stream`) as tf.data batches; with mixup the gold
        of every split is a distribution. `kwargs` go to the split's `batches`."""
        classes = self.dataset.task.num_classes if self.objective.distributions else None
        return split.batches(self.options.batch_size, one_hot=classes, **kwargs)


def check_cnn(options, dataset):
    """Refuses a CNN spec that the data set's input shape cannot take (a layer left with no
    position along an axis, a residual block that changes the shape), naming the layer."""
    if options.model != "cnn":
        return
    try:
        specs.output_shape(specs.parse(options.cnn), dataset.input_shape)
    except specs.SpecError as error:
        validation.fail(
            "cnn", options.cnn, f"a CNN spec for inputs of shape {dataset.input_shape}: {error}"
        )


def make_plan(options, dataset, strategy):
    """The `Plan` of `options` on `dataset`; raises `ValueError` for options the data set
    cannot take (mixup or calibrate without classes, augmentations for other inputs, a CNN
    spec that shrinks the inputs below one position) before anything is written."""
    transforms = tuple(transforms_for(options, dataset))  # refuses mixup without classes
    check_cnn(options, dataset)
    if options.calibrate and dataset.task.kind == tasks.REGRESSION:
        validation.fail(
            "calibrate",
            options.calibrate,
            "False for a regression data set (temperature scaling rescales a classifier's logits)",
        )
    objective = objectives.objective(
        dataset.task, label_smoothing=options.label_smoothing, distributions=bool(options.mixup)
    )
    steps = math.ceil(dataset.train.size / options.batch_size)
    return Plan(
        options=options,
        dataset=dataset,
        objective=objective,
        transforms=transforms,
        strategy=strategy,
        steps_per_epoch=steps,
        steps_per_execution=steps_per_execution(
            steps, options.steps_per_execution, options.strategy
        ),
    )
