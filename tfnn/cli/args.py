"""The train command's flags (NPFL114's names) and their validation.

This module imports neither TensorFlow nor Keras, so a bad flag is refused in
a fraction of a second, before any heavy work: one line on stderr, exit
status 2, nothing written.
"""

import argparse
import math
import re
import sys

from tfnn.models import spec

ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "selu", "swish", "prelu")
INITS = ("fan_in", "glorot", "he", "lecun")
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw")
DECAYS = ("none", "linear", "cosine", "exponential")
CLIP_MODES = ("none", "value", "norm", "global_norm")
MODELS = ("mlp", "cnn")
ENSEMBLE_KINDS = ("init", "bagging", "checkpoints")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi_worker")
# The default recipe, chosen on MNIST-1D validation accuracy (docs/benchmarks.md).
DEFAULT_CNN = (
    "CB-32-5-1-same,CB-32-5-1-same,M-2-2,CB-64-3-1-same,CB-64-3-1-same,M-2-2,CB-64-3-1-same,G,D-0.3"
)
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# --augment names: (inputs they apply to, type, lowest, highest value); flip takes no value.
AUGMENTATIONS = {
    "translate": ("images", float, 0.0, 1.0),
    "rotate": ("images", float, 0.0, 180.0),
    "zoom": ("images", float, 0.0, 0.9),
    "flip": ("images", None, None, None),
    "brightness": ("images", float, 0.0, 1.0),
    "contrast": ("images", float, 0.0, 1.0),
    "saturation": ("rgb images", float, 0.0, 1.0),
    "hue": ("rgb images", float, 0.0, 0.5),
    "shift": ("signals", int, 0, 1000),
    "stretch": ("signals", float, 0.0, 0.9),
    "scale": ("signals", float, 0.0, 1.0),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports an error as one line (no usage block) and exits 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: `kind` within [low, high] (or open at either end)."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            left = "(" if low_open else "["
            right = ")" if high_open else "]"
            lo = "-inf" if low is None else low
            hi = "inf" if high is None else high
            raise argparse.ArgumentTypeError(
                f"expected a value in {left}{lo}, {hi}{right}, got {text}"
            )
        return value

    return parse


positive_int = number(int, low=1)
non_negative_int = number(int, low=0)
positive_float = number(float, low=0, low_open=True)
non_negative_float = number(float, low=0)
probability = number(float, low=0, high=1)
rate = number(float, low=0, high=1, high_open=True)
fraction = number(float, low=0, high=1, low_open=True, high_open=True)
port = number(int, low=0, high=65535)


def augmentation(text):
    """--augment "translate=0.1,flip" → {"translate": 0.1, "flip": True}."""
    result = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, has_value, value = part.partition("=")
        if name not in AUGMENTATIONS:
            raise argparse.ArgumentTypeError(
                f"unknown augmentation {name!r}; expected some of {', '.join(AUGMENTATIONS)}"
            )
        _, kind, low, high = AUGMENTATIONS[name]
        if kind is None:
            if has_value:
                raise argparse.ArgumentTypeError(f"{part!r}: {name} takes no value")
            result[name] = True
            continue
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or not math.isfinite(number) or not low <= number <= high:
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected {name}=<{kind.__name__} in [{low}, {high}]>"
            )
        result[name] = number
    return result


def parser():
    p = OneLineParser(
        prog="train.py",
        description="Train a network with the lecture's recipe, evaluate, draw and export it.",
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="mnist1d",
        help="mnist1d, digits, diabetes, breast_cancer, or a TFDS catalog name",
    )
    data.add_argument("--data_dir", default=None, help="TFDS data folder (default: TFDS's own)")
    data.add_argument(
        "--validation_fraction",
        type=fraction,
        default=0.1,
        help="share of the train split held out for validation",
    )

    model = p.add_argument_group("model")
    model.add_argument("--model", choices=MODELS, default="cnn")
    model.add_argument(
        "--cnn",
        default=DEFAULT_CNN,
        help="the CNN of --model cnn, as an NPFL114 spec string (see tfnn.models.spec)",
    )
    model.add_argument(
        "--hidden_layers",
        type=positive_int,
        nargs="*",
        default=[256, 256],
        help="sizes of the hidden layers",
    )
    model.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    model.add_argument(
        "--init", choices=INITS, default="he", help="kernel initialization (biases start at 0)"
    )

    training = p.add_argument_group("training")
    training.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    training.add_argument("--learning_rate", type=positive_float, default=3e-3)
    training.add_argument(
        "--decay", choices=DECAYS, default="cosine", help="learning-rate schedule over all steps"
    )
    training.add_argument(
        "--learning_rate_final",
        type=positive_float,
        default=None,
        help="final rate of a decay (default: learning_rate / 100)",
    )
    training.add_argument("--momentum", type=rate, default=0.9, help="for --optimizer momentum")
    training.add_argument(
        "--weight_decay", type=non_negative_float, default=0.004, help="for --optimizer adamw"
    )
    training.add_argument("--batch_size", type=positive_int, default=100)
    training.add_argument("--epochs", type=positive_int, default=50)
    training.add_argument(
        "--patience",
        type=non_negative_int,
        default=0,
        help="early stopping after this many epochs without improvement (0: off)",
    )
    training.add_argument(
        "--steps_per_execution",
        type=positive_int,
        default=10,
        help="training steps per compiled call: fewer Python round trips, the same training",
    )
    training.add_argument("--seed", type=int, default=42)
    training.add_argument(
        "--threads", type=non_negative_int, default=1, help="CPU threads (0: all)"
    )

    devices = p.add_argument_group("precision and devices")
    devices.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="the Keras dtype policy: mixed policies compute in 16 bits with float32 weights",
    )
    devices.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="mirrored: every local GPU (or --cpu_devices); multi_worker: the machines in "
        "TF_CONFIG; --batch_size is the global batch",
    )
    devices.add_argument(
        "--cpu_devices",
        type=non_negative_int,
        default=0,
        help="split the CPU into N logical devices (replicas of --strategy mirrored without GPUs)",
    )

    regularization = p.add_argument_group("regularization")
    regularization.add_argument(
        "--dropout",
        type=rate,
        default=0.3,
        help="after each hidden layer of the MLP (the CNN has D- in its spec)",
    )
    regularization.add_argument(
        "--l1",
        type=non_negative_float,
        default=0.0,
        help="L1 strength, applied as a proximal step (exact zeros)",
    )
    regularization.add_argument("--l2", type=non_negative_float, default=0.0)
    regularization.add_argument(
        "--label_smoothing",
        type=probability,
        default=None,
        help="ε of label smoothing (default: 0.1 for classes, none for regression)",
    )
    regularization.add_argument(
        "--max_norm",
        type=non_negative_float,
        default=0.0,
        help="cap on each unit's weight norm (0: off)",
    )
    regularization.add_argument(
        "--augment",
        type=augmentation,
        default={},
        help="comma list; images: translate=F,rotate=DEG,zoom=F,flip,brightness=D,contrast=F, "
        "and for RGB saturation=F,hue=D; "
        "signals: shift=N,stretch=F,scale=F",
    )
    regularization.add_argument(
        "--noise",
        type=non_negative_float,
        default=0.0,
        help="σ of Gaussian noise added to the inputs",
    )
    regularization.add_argument(
        "--mixup", type=non_negative_float, default=0.0, help="α of mixup's Beta(α, α) (0: off)"
    )
    regularization.add_argument(
        "--clip_mode",
        choices=CLIP_MODES,
        default="none",
        help="value: per weight, norm: per matrix, global_norm: whole gradient",
    )
    regularization.add_argument(
        "--clip", type=positive_float, default=1.0, help="clipping threshold c"
    )

    ensemble = p.add_argument_group("ensembles")
    ensemble.add_argument(
        "--ensemble", type=positive_int, default=1, help="N: train N members and average them"
    )
    ensemble.add_argument(
        "--ensemble_kind",
        choices=ENSEMBLE_KINDS,
        default="init",
        help="init: members differ by seed; bagging: also by a bootstrap sample of the training "
        "set; checkpoints: one run's last N epochs",
    )
    ensemble.add_argument(
        "--checkpoint_average",
        choices=("weights", "outputs"),
        default="weights",
        help="how --ensemble_kind checkpoints combines its epochs",
    )
    ensemble.add_argument(
        "--mc_dropout",
        type=non_negative_int,
        default=20,
        help="T: also evaluate Monte-Carlo dropout with T passes (0: off; models with dropout)",
    )

    output = p.add_argument_group("output")
    output.add_argument("--logdir", default="logs", help="parent folder of the run folders")
    output.add_argument("--export_dir", default="saved_models")
    output.add_argument(
        "--model_name", default=None, help="name under --export_dir (default: the dataset's)"
    )
    output.add_argument(
        "--verbose", type=int, choices=(0, 1, 2), default=2, help="Keras's fit verbosity"
    )
    return p


def parse(argv=None):
    """Parsed and validated flags; on a bad flag, prints one line and exits 2."""
    p = parser()
    args = p.parse_args(argv)
    if args.model_name is None:
        args.model_name = args.dataset.replace("/", "_").replace(":", "_")
    try:
        spec.parse(args.cnn)
    except spec.SpecError as error:
        p.error(f"argument --cnn: {error}")
    if not _MODEL_NAME.fullmatch(args.model_name) or args.model_name in (".", ".."):
        p.error(
            f"argument --model_name: {args.model_name!r} must be one folder name "
            "(letters, digits, '_', '.', '-'; not starting with '.') inside --export_dir"
        )
    if (
        args.decay != "none"
        and args.learning_rate_final is not None
        and args.learning_rate_final > args.learning_rate
    ):
        p.error("argument --learning_rate_final: must not exceed --learning_rate")
    if args.strategy == "multi_worker":
        for flag, value in (("--patience", args.patience), ("--ensemble", args.ensemble > 1)):
            if value:
                p.error(f"argument {flag}: not available with --strategy multi_worker")
    if args.ensemble_kind == "checkpoints" and args.ensemble > 1:
        if args.patience:
            p.error(
                "argument --ensemble_kind: checkpoints averages the last epochs of a run; "
                "it cannot be combined with --patience"
            )
        if args.ensemble > args.epochs:
            p.error("argument --ensemble: checkpoints needs --ensemble <= --epochs")
    return args


# Flags that change where results go or how they are shown, not the results.
OUTPUT_ONLY = (
    "data_dir",
    "logdir",
    "export_dir",
    "model_name",
    "threads",
    "verbose",
    "steps_per_execution",
)


def non_default(args):
    """The result-changing flags that differ from their defaults, as [(name, value)]."""
    defaults = vars(parser().parse_args([]))
    changed = []
    for name, value in vars(args).items():
        if name in OUTPUT_ONLY:
            continue
        default = defaults.get(name)
        if value != default:
            changed.append((name, value))
    return changed


class UsageError(ValueError):
    """Bad input found after parsing (an unknown dataset, a flag the data set cannot take)."""


def exit_with(error):
    """Reports a `UsageError` like a bad flag: one line on stderr, exit status 2."""
    print(f"train.py: error: {error}", file=sys.stderr)
    raise SystemExit(2)
