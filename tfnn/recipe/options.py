"""The options of a training run: one frozen dataclass, checked once when it is made.

`Options(**options)` holds every choice of the recipe under the name of its
`train.py` flag, with the same default; `tfnn.train(**options)` and the
command line both make one. A bad value raises `ValueError` in the form of
`tfnn.validation` before anything runs or is written. The field metadata
(help text, flag type, group) is what `tfnn.cli.train` turns into flags, so
the flags and the options cannot drift apart. No TensorFlow import.

`calibrate` applies to classifiers only, which the data set decides: a
regression data set refuses it when the plan is made (`tfnn.recipe.plan`), as
it refuses mixup.

Two defaults depend on other options and are settled here: `model_name`
(the data set's name) and, when the data set is known, `label_smoothing`
(0.1 for classes and binary outcomes, none for regression: see
`tfnn.objectives`).

An option that only one model, optimizer or mode reads defaults to None, "that
choice's default", and is resolved here to its field's `unset` value where it
applies; set where it has no effect, it is refused.
"""

import dataclasses
import functools
import os
import re

from tfnn import names, validation
from tfnn.models import spec

MODELS = ("cnn", "mlp")
ENSEMBLE_KINDS = ("init", "bagging", "checkpoints")
CHECKPOINT_AVERAGES = ("weights", "outputs")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi_worker")
JIT_COMPILE = ("auto", "on", "off")
SEED_MAX = 2**32 - 1  # numpy's and Keras's seeds are 32-bit unsigned
# The default recipe, chosen on MNIST-1D validation accuracy (docs/benchmarks.md).
DEFAULT_CNN = (
    "CB-32-5-1-same,CB-32-5-1-same,M-2-2,CB-64-3-1-same,CB-64-3-1-same,M-2-2,CB-64-3-1-same,G,D-0.3"
)

# augment names → (inputs they apply to, type, lowest, highest value); flip takes no value.
AUGMENTATIONS = {
    "translate": ("images", float, 0.0, 1.0),
    "rotate": ("images", float, 0.0, 180.0),
    "zoom": ("images", float, 0.0, 0.9),
    "flip": ("images", bool, None, None),
    "brightness": ("images", float, 0.0, 1.0),
    "contrast": ("images", float, 0.0, 1.0),
    "saturation": ("rgb images", float, 0.0, 1.0),
    "hue": ("rgb images", float, 0.0, 0.5),
    "shift": ("signals", int, 0, 1000),
    "stretch": ("signals", float, 0.0, 0.9),
    "scale": ("signals", float, 0.0, 1.0),
}

# Options that change where results go or how they are shown, not the results.
OUTPUT_ONLY = (
    "data_dir",
    "logdir",
    "export_dir",
    "model_name",
    "threads",
    "verbose",
    "steps_per_execution",
    "workers",
)

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MODEL_NAME_MAX = 255  # a folder name's bytes on the usual file systems; the name is ASCII


def _option(
    default, help, group, check=None, kind=None, choices=None, many=False, applies=None, unset=None
):
    """A field with what the command line needs: its help, flag type and group, and its check
    (which lets a None default through).

    `many`: the flag takes several values (a tuple). `applies`: (a test of the options, the
    words naming it): the option has an effect only where the test holds; left None there it
    takes `unset`, and set elsewhere it is refused. The help text says both."""
    if choices is not None:
        check = functools.partial(validation.one_of, choices=choices)
    if default is None:
        check = _optional(check)
    if applies is not None:
        shown = " ".join(map(str, unset)) if isinstance(unset, tuple) else unset
        help += f" (only with {applies[1]}" + ("" if unset is None else f"; unset: {shown}") + ")"
    kind = kind or (type(default) if default is not None else str)
    metadata = {
        "help": help,
        "group": group,
        "check": check,
        "kind": kind,
        "choices": choices,
        "many": many,
        "applies": applies,
        "unset": unset,
    }
    return dataclasses.field(default=default, metadata=metadata)


def _optional(check):
    """`check`, letting None (the derived default) through."""
    return lambda name, value: None if value is None else check(name, value)


_CNN = (lambda o: o.model == "cnn", "model='cnn'")
_MLP = (lambda o: o.model == "mlp", "model='mlp'")

_positive_int = functools.partial(validation.integer, low=1)
_non_negative_int = functools.partial(validation.integer, low=0)
_positive = functools.partial(validation.number, low=0, low_open=True)
_non_negative = functools.partial(validation.number, low=0)
_rate = functools.partial(validation.number, low=0, high=1, high_open=True)


def _text(name, value):
    if not isinstance(value, str) or not value:
        validation.fail(name, value, "a non-empty string")
    return value


def _path(name, value):
    """A folder's path or a data set's name as text: a str, or an os.PathLike (pathlib.Path)."""
    return validation.path(name, value, what="a non-empty path or name")


def _cnn(name, value):
    _text(name, value)
    try:
        spec.parse(value)
    except spec.SpecError as error:
        validation.fail(name, value, f"a CNN spec string; {error}")
    return value


def _boolean(name, value):
    if not isinstance(value, bool):
        validation.fail(name, value, "True or False")
    return value


def _model_name(name, value):
    if not isinstance(value, str) or not _MODEL_NAME.fullmatch(value):  # "." and ".." too
        validation.fail(
            name, value, "one folder name (letters, digits, '_', '.', '-'; not starting with '.')"
        )
    if len(value) > MODEL_NAME_MAX:  # else the run trains and only its export fails
        validation.fail(
            name, value, f"a folder name of at most {MODEL_NAME_MAX} characters (NAME_MAX)"
        )
    return value


def default_model_name(dataset):
    """The export folder's name for `dataset` when --model_name is not given.

    A folder is named after itself, the last part of its absolute path: `pets`, `pets/`,
    `./pets`, `pets/.` and `/home/me/pets` are one data set, so one model with its versions
    (two folders both named `pets` share it too: their exports are versions of one name).
    A TFDS name is taken whole (`cifar10/3.0.2` → `cifar10_3.0.2`). Characters other than
    letters, digits, '_', '.' and '-' become '_', and leading dots are dropped; a name of
    dots alone is `model`."""
    if names.is_dataset_path(dataset):
        dataset = os.path.basename(os.path.abspath(os.path.expanduser(dataset)))
    return re.sub(r"[^A-Za-z0-9_.-]", "_", dataset).lstrip(".") or "model"


def parse_augment(text):
    """ "translate=0.1,flip" → {"translate": 0.1, "flip": True} (the flag's form); "+"
    separates as "," does (a sweep's choice: shift=10+stretch=0.1), and "none" is {}. An
    augmentation named twice is refused (which value was meant is unknowable)."""
    if text.strip().lower() == "none":
        return {}
    result = {}
    for part in filter(None, (p.strip() for p in re.split("[,+]", text))):
        name, has_value, value = part.partition("=")
        if name in result:
            validation.fail("augment", text, f"each augmentation named once ({name!r} is twice)")
        kind = AUGMENTATIONS.get(name, (None, None))[1]
        if kind is bool:
            result[name] = True if not has_value else value
            continue
        try:
            result[name] = kind(value) if kind else value
        except ValueError:
            result[name] = value  # refused by the check, which names it
    return result


def _augment(name, value):
    """A mapping of augmentation names to their values, each within its range."""
    if isinstance(value, str):
        value = parse_augment(value)
    if not isinstance(value, dict):
        validation.fail(name, value, "a mapping such as {'translate': 0.1, 'flip': True}")
    checked = {}
    for key, amount in value.items():
        if key not in AUGMENTATIONS:
            validation.fail(
                f"{name}[{key!r}]", amount, f"an augmentation of {tuple(AUGMENTATIONS)}"
            )
        _, kind, low, high = AUGMENTATIONS[key]
        if kind is bool:
            if amount is not True:
                validation.fail(f"{name}[{key!r}]", amount, "True (flip takes no value)")
            checked[key] = True
        elif kind is int:
            checked[key] = validation.integer(f"{name}[{key!r}]", amount, low=low, high=high)
        else:
            checked[key] = validation.number(f"{name}[{key!r}]", amount, low=low, high=high)
    return checked


@dataclasses.dataclass(frozen=True)
class Options:
    """Every choice of a training run; see `train.py --help` for each."""

    # data
    dataset: str = _option(
        "mnist1d",
        "mnist1d, digits, diabetes, breast_cancer (embedded), a TFDS catalog name, or a folder",
        "data",
        _path,
    )
    data_dir: str = _option(None, "TFDS data folder (None: TFDS's own)", "data", _path)
    validation_fraction: float = _option(
        0.1,
        "share of the train split held out for validation",
        "data",
        functools.partial(validation.number, low=0, high=1, low_open=True, high_open=True),
    )
    # model
    model: str = _option("cnn", "the network", "model", choices=MODELS)
    cnn: str = _option(
        None,
        "the CNN as an NPFL114 spec string (tfnn.models.spec)",
        "model",
        _cnn,
        applies=_CNN,
        unset=DEFAULT_CNN,
    )
    hidden_layers: tuple = _option(
        None,
        "sizes of the MLP's hidden layers",
        "model",
        functools.partial(validation.integers, low=1),
        kind=int,
        many=True,
        applies=_MLP,
        unset=(256, 256),
    )
    activation: str = _option(
        None,
        "f of the MLP's hidden layers",
        "model",
        choices=names.ACTIVATIONS,
        applies=_MLP,
        unset="relu",
    )
    init: str = _option(
        "he",
        "kernel initialization of either model (biases start at 0)",
        "model",
        choices=tuple(names.INITIALIZERS),
    )
    # training
    optimizer: str = _option("adam", "the update rule", "training", choices=names.OPTIMIZERS)
    learning_rate: float = _option(3e-3, "the (initial) learning rate", "training", _positive)
    decay: str = _option(
        "cosine", "learning-rate schedule over all steps", "training", choices=names.DECAYS
    )
    learning_rate_final: float = _option(
        None,
        "final rate of the decay (None: learning_rate / 100)",
        "training",
        _positive,
        kind=float,
        applies=(lambda o: o.decay != "none", "a decay other than 'none'"),
    )
    momentum: float = _option(
        None,
        "β of the momentum optimizer",
        "training",
        _rate,
        kind=float,
        applies=(lambda o: o.optimizer == "momentum", "optimizer='momentum'"),
        unset=0.9,
    )
    weight_decay: float = _option(
        None,
        "AdamW's decoupled weight decay",
        "training",
        _non_negative,
        kind=float,
        applies=(lambda o: o.optimizer == "adamw", "optimizer='adamw'"),
        unset=0.004,
    )
    batch_size: int = _option(100, "examples per training step", "training", _positive_int)
    epochs: int = _option(50, "passes over the training split", "training", _positive_int)
    patience: int = _option(
        0,
        "early stopping after this many epochs without improvement (0: off)",
        "training",
        _non_negative_int,
    )
    steps_per_execution: int = _option(
        10,
        "training steps per compiled call: fewer Python round trips, the same training",
        "training",
        _positive_int,
    )
    seed: int = _option(
        42,
        "fixes data order, augmentation, initialization and dropout (an init or bagging "
        "ensemble's member i takes seed + i - 1)",
        "training",
        functools.partial(validation.integer, low=0, high=SEED_MAX),
    )
    threads: int = _option(
        None,
        "TensorFlow's CPU threads in this process, for each op and for ops at once (0: all; "
        "None: one for each op and two ops at once where it trains, all where it only "
        "evaluates and exports, its ensemble's members training on pool workers)",
        "training",
        _non_negative_int,
        kind=int,
    )
    # precision and devices
    precision: str = _option(
        "float32",
        "the Keras dtype policy: mixed policies compute in 16 bits with float32 weights",
        "precision and devices",
        choices=PRECISIONS,
    )
    jit_compile: str = _option(
        "auto",
        "XLA-compile the training and evaluation steps; auto: only where a GPU is present (on "
        "CPUs it measured no faster, docs/benchmarks.md); XLA turns op determinism off",
        "precision and devices",
        choices=JIT_COMPILE,
    )
    strategy: str = _option(
        "default",
        "mirrored: every local GPU (or --cpu_devices); multi_worker: the machines in TF_CONFIG; "
        "--batch_size is the global batch",
        "precision and devices",
        choices=STRATEGIES,
    )
    cpu_devices: int = _option(
        0,
        "split the CPU into N logical devices (replicas of --strategy mirrored without GPUs)",
        "precision and devices",
        _non_negative_int,
    )
    # regularization
    dropout: float = _option(
        None,
        "p of dropout after each hidden layer of the MLP",
        "regularization",
        _rate,
        kind=float,
        applies=(_MLP[0], "model='mlp' (the CNN's dropout is D- in its spec)"),
        unset=0.3,
    )
    l1: float = _option(
        0.0,
        "L1 strength λ, applied as a proximal step (exact zeros)",
        "regularization",
        _non_negative,
    )
    l2: float = _option(0.0, "L2 strength λ on every kernel", "regularization", _non_negative)
    label_smoothing: float = _option(
        None,
        "ε of label smoothing (None: 0.1 for classes, none for regression)",
        "regularization",
        _rate,
        kind=float,
    )
    max_norm: float = _option(
        None,
        "cap on each MLP unit's incoming weight norm (0: off)",
        "regularization",
        _non_negative,
        kind=float,
        applies=_MLP,
        unset=0.0,
    )
    augment: dict = _option(
        None,
        "comma list (or none); images: translate=F,rotate=DEG,zoom=F,flip,brightness=D,"
        "contrast=F, and for RGB saturation=F,hue=D; signals: shift=N,stretch=F,scale=F",
        "regularization",
        _augment,
        kind=str,
    )
    noise: float = _option(
        0.0, "σ of Gaussian noise added to the training inputs", "regularization", _non_negative
    )
    mixup: float = _option(0.0, "α of mixup's Beta(α, α) (0: off)", "regularization", _non_negative)
    clip_mode: str = _option(
        "none",
        "gradient clipping; value: per weight, norm: per matrix, global_norm: whole gradient",
        "regularization",
        choices=("none", *names.CLIP_MODES),
    )
    clip: float = _option(
        None,
        "clipping threshold c",
        "regularization",
        _positive,
        kind=float,
        applies=(lambda o: o.clip_mode != "none", "a clip_mode other than 'none'"),
        unset=1.0,
    )
    # ensembles
    ensemble: int = _option(1, "N: train N members and average them", "ensembles", _positive_int)
    ensemble_kind: str = _option(
        "init",
        "init: members differ by seed; bagging: also by a bootstrap sample of the training "
        "split; checkpoints: one run's last N epochs",
        "ensembles",
        choices=ENSEMBLE_KINDS,
    )
    checkpoint_average: str = _option(
        None,
        "how a checkpoint ensemble combines its epochs",
        "ensembles",
        choices=CHECKPOINT_AVERAGES,
        applies=(
            lambda o: o.ensemble > 1 and o.ensemble_kind == "checkpoints",
            "ensemble > 1 and ensemble_kind='checkpoints'",
        ),
        unset="weights",
    )
    workers: int = _option(
        None,
        "processes training the members at once (tfnn.recipe.pool); None: one a CPU this "
        "process may use; 1: one after another in this process",
        "ensembles",
        _positive_int,
        kind=int,
        applies=(
            lambda o: o.pooled_members() > 0,
            "ensemble > 1, ensemble_kind 'init' or 'bagging' and cpu_devices <= 1",
        ),
    )
    mc_dropout: int = _option(
        20,
        "T: also evaluate Monte-Carlo dropout with T passes (0: off; models with dropout)",
        "ensembles",
        _non_negative_int,
    )
    # calibration
    calibrate: bool = _option(
        False,
        "fit one temperature T on the validation split after training (D7): the figures add "
        "the NLL and ECE of softmax(z/T), the export returns softmax(z/T) or σ(z/T) "
        "(classes and binary outcomes only)",
        "calibration",
        _boolean,
    )
    # output
    logdir: str = _option("logs", "parent folder of the run folders", "output", _path)
    export_dir: str = _option("saved_models", "parent folder of the exports", "output", _path)
    model_name: str = _option(
        None,
        "folder under --export_dir (None: the dataset's name; a folder's own name)",
        "output",
        _model_name,
    )
    verbose: int = _option(2, "Keras's fit verbosity", "output", choices=(0, 1, 2), kind=int)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "augment" and value is None:
                value = {}
            value = field.metadata["check"](field.name, value)
            object.__setattr__(self, field.name, value)
        if self.model_name is None:
            object.__setattr__(self, "model_name", default_model_name(self.dataset))
        self._resolve()
        self._check_combinations()

    def _resolve(self):
        """Refuses an option set where it has no effect; where it applies, fills in its
        `unset` value for None."""
        for field in dataclasses.fields(self):
            if field.metadata["applies"] is None:
                continue
            applies, condition = field.metadata["applies"]
            value = getattr(self, field.name)
            if not applies(self):
                if value is not None:
                    validation.fail(field.name, value, f"None (no effect) unless {condition}")
            elif value is None:
                object.__setattr__(self, field.name, field.metadata["unset"])

    def _check_combinations(self):
        if names.is_dataset_path(self.dataset):
            data = _real(self.dataset)
            for name in ("logdir", "export_dir"):
                path = getattr(self, name)
                if os.path.commonpath([data, _real(path)]) == data:
                    validation.fail(
                        name,
                        path,
                        f"a folder outside the dataset folder {self.dataset!r} (what a run "
                        "writes there would be read as data)",
                    )
        # learning_rate_final is None unless a decay applies (refused otherwise by _resolve).
        if self.learning_rate_final is not None and self.learning_rate_final > self.learning_rate:
            validation.fail(
                "learning_rate_final",
                self.learning_rate_final,
                f"a final rate <= learning_rate={self.learning_rate}",
            )
        if self.strategy == "multi_worker":
            if self.patience:
                validation.fail("patience", self.patience, "0 with strategy='multi_worker'")
            if self.ensemble > 1:
                validation.fail("ensemble", self.ensemble, "1 with strategy='multi_worker'")
        last_seed = self.seed + self.ensemble - 1
        if self.ensemble_kind != "checkpoints" and last_seed > SEED_MAX:
            validation.fail(
                "seed",
                self.seed,
                f"a seed whose ensemble's last member seed (seed + ensemble - 1 = {last_seed}) "
                f"is at most {SEED_MAX}, with ensemble={self.ensemble}",
            )
        if self.ensemble_kind == "checkpoints" and self.ensemble > 1:
            if self.patience:
                validation.fail(
                    "patience",
                    self.patience,
                    "0 with ensemble_kind='checkpoints' (it averages a run's last epochs)",
                )
            if self.ensemble > self.epochs:
                validation.fail(
                    "ensemble",
                    self.ensemble,
                    f"at most epochs={self.epochs} members with ensemble_kind='checkpoints'",
                )

    def pooled_members(self):
        """The trainings of this run that may run at once on `workers` processes: the N
        members of an init or bagging ensemble; 0 for one run (a checkpoint ensemble's
        included) and on logical CPU devices (`cpu_devices` > 1), which exist only in the
        process that made them at its start, not in a pool worker."""
        if self.ensemble > 1 and self.ensemble_kind != "checkpoints" and self.cpu_devices <= 1:
            return self.ensemble
        return 0

    def as_dict(self):
        """{name: value}, JSON-ready (tuples as lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    def changed(self):
        """The result-changing options that differ from their defaults, as [(name, value)];
        an option that applies only somewhere counts as changed when it differs from the
        value it takes there when unset."""
        return [
            (field.name, getattr(self, field.name))
            for field in dataclasses.fields(self)
            if field.name not in OUTPUT_ONLY and getattr(self, field.name) != _default(self, field)
        ]


def _real(path):
    """`path` absolute, with '~', '..' and links resolved (it need not exist)."""
    return os.path.realpath(os.path.expanduser(path))


def _default(options, field):
    """The value `field` takes in `options` when left unset."""
    if field.metadata["applies"] is not None:
        return field.metadata["unset"] if field.metadata["applies"][0](options) else None
    return getattr(DEFAULTS, field.name)


def fields():
    """The option fields, in flag order."""
    return dataclasses.fields(Options)


DEFAULTS = Options()
