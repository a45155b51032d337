import importlib.util
import re

import pytest

from tfnn.recipe import options as options_module
from tfnn.recipe.options import DEFAULT_CNN, DEFAULTS, Options, fields

BAD = [
    ({"model": "mlp", "dropout": 1.0}, "dropout=1.0"),
    ({"model": "mlp", "dropout": -0.1}, "dropout=-0.1"),
    ({"learning_rate": 0}, "learning_rate=0"),
    ({"learning_rate": float("nan")}, "learning_rate=nan"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"batch_size": 2.5}, "batch_size=2.5"),
    ({"epochs": True}, "epochs=True"),
    ({"model": "mlp", "hidden_layers": [100, 0]}, "hidden_layers=[100, 0]"),
    ({"model": "mlp", "hidden_layers": "100"}, "hidden_layers='100'"),
    ({"l2": -1e-4}, "l2=-0.0001"),
    ({"label_smoothing": 1.5}, "label_smoothing=1.5"),
    ({"clip_mode": "norm", "clip": 0}, "clip=0"),
    ({"clip_mode": "elementwise"}, "clip_mode='elementwise'"),
    ({"optimizer": "lbfgs"}, "optimizer='lbfgs'"),
    ({"model": "mlp", "activation": "softplus"}, "activation='softplus'"),
    ({"init": "orthogonal"}, "init='orthogonal'"),
    ({"validation_fraction": 1}, "validation_fraction=1"),
    ({"model_name": "../escape"}, "model_name='../escape'"),
    ({"model_name": "a/b"}, "model_name='a/b'"),
    ({"model_name": ".."}, "model_name='..'"),
    (
        {"decay": "cosine", "learning_rate": 0.01, "learning_rate_final": 0.1},
        "learning_rate_final=0.1",
    ),
    ({"model": "cnn", "cnn": "C-16-5-x-same,F"}, "cnn='C-16-5-x-same,F'"),
    ({"model": "rnn"}, "model='rnn'"),
    ({"augment": "tilt=3"}, "augment['tilt']='3'"),
    ({"augment": "flip=1"}, "augment['flip']='1'"),
    ({"augment": {"rotate": 200}}, "augment['rotate']=200"),
    ({"augment": "shift=1.5"}, "augment['shift']='1.5'"),
    ({"augment": ["flip"]}, "augment=['flip']"),
    ({"mixup": -1}, "mixup=-1"),
    ({"noise": -0.1}, "noise=-0.1"),
    ({"ensemble": 0}, "ensemble=0"),
    ({"ensemble_kind": "boosting"}, "ensemble_kind='boosting'"),
    ({"ensemble": 3, "ensemble_kind": "checkpoints", "patience": 2}, "patience=2"),
    ({"ensemble": 9, "ensemble_kind": "checkpoints", "epochs": 5}, "ensemble=9"),
    ({"strategy": "multi_worker", "ensemble": 2}, "ensemble=2"),
    (
        {"ensemble": 2, "ensemble_kind": "checkpoints", "checkpoint_average": "median"},
        "checkpoint_average='median'",
    ),
    ({"mc_dropout": -1}, "mc_dropout=-1"),
    ({"verbose": 3}, "verbose=3"),
    ({"calibrate": "yes"}, "calibrate='yes'"),
    ({"calibrate": 1}, "calibrate=1"),
]


# Options only one model, optimizer or mode reads, set where they have no effect.
NO_EFFECT = [
    ({"model": "cnn", "dropout": 0.5}, "dropout=0.5"),
    ({"model": "cnn", "max_norm": 3.0}, "max_norm=3.0"),
    ({"model": "cnn", "hidden_layers": (32,)}, "hidden_layers=(32,)"),
    ({"model": "cnn", "activation": "tanh"}, "activation='tanh'"),
    ({"model": "mlp", "cnn": "C-8-3-1-same,G"}, "cnn='C-8-3-1-same,G'"),
    ({"clip": 0.5}, "clip=0.5"),
    ({"momentum": 0.5}, "momentum=0.5"),
    ({"optimizer": "adam", "weight_decay": 0.01}, "weight_decay=0.01"),
    ({"decay": "none", "learning_rate_final": 1e-4}, "learning_rate_final=0.0001"),
    ({"checkpoint_average": "outputs"}, "checkpoint_average='outputs'"),
    ({"ensemble": 3, "checkpoint_average": "outputs"}, "checkpoint_average='outputs'"),
    (
        {"ensemble": 1, "ensemble_kind": "checkpoints", "checkpoint_average": "weights"},
        "checkpoint_average='weights'",
    ),
]


@pytest.mark.parametrize(
    "options, received, expected",
    [
        *((*bad, "Expected ") for bad in BAD),
        *((*bad, "Expected None (no effect) unless ") for bad in NO_EFFECT),
    ],
)
def test_a_bad_option_is_one_line_in_keras_form_naming_it(options, received, expected):
    with pytest.raises(ValueError) as raised:
        Options(**options)
    message = str(raised.value)
    assert message.startswith(expected)
    assert message.endswith(f"Received: {received}") and "\n" not in message


def test_defaults_name_the_export_after_the_dataset_and_change_nothing():
    assert (DEFAULTS.dataset, DEFAULTS.model_name, DEFAULTS.export_dir) == (
        "mnist1d",
        "mnist1d",
        "saved_models",
    )
    assert DEFAULTS.changed() == []
    options = Options(dataset="digits", l2=0.001, verbose=0, logdir="elsewhere")
    assert options.model_name == "digits"
    assert options.changed() == [("dataset", "digits"), ("l2", 0.001)]  # output-only left out
    assert Options(dataset="my/set:v2").model_name == "my_set_v2"


def test_values_are_normalized_once():
    options = Options(
        model="mlp", hidden_layers=[32, 16], augment="translate=0.1,flip", learning_rate=1
    )
    assert options.hidden_layers == (32, 16)
    assert options.augment == {"translate": 0.1, "flip": True}
    assert options.learning_rate == 1.0 and isinstance(options.learning_rate, float)
    assert options.as_dict()["hidden_layers"] == [32, 16]  # JSON-ready
    with pytest.raises(AttributeError):
        options.epochs = 3  # frozen


def test_the_augment_text_and_mapping_are_the_same_option():
    text = Options(dataset="digits", augment="rotate=15,zoom=0.1,flip")
    mapping = Options(dataset="digits", augment={"rotate": 15, "zoom": 0.1, "flip": True})
    assert text == mapping
    assert re.fullmatch(r"\{.*\}", repr(text.augment))


def test_an_option_left_unset_takes_its_default_where_it_applies():
    mlp = Options(model="mlp")
    assert (mlp.hidden_layers, mlp.activation, mlp.dropout, mlp.max_norm) == (
        (256, 256),
        "relu",
        0.3,
        0.0,
    )
    assert mlp.cnn is None and mlp.changed() == [("model", "mlp")]  # the MLP's defaults
    cnn = Options()
    assert cnn.cnn == DEFAULT_CNN and (cnn.dropout, cnn.hidden_layers, cnn.activation) == (
        None,
        None,
        None,
    )
    assert (cnn.momentum, cnn.weight_decay, cnn.clip, cnn.checkpoint_average) == (None,) * 4
    assert Options(optimizer="momentum").momentum == 0.9
    assert Options(optimizer="adamw").weight_decay == 0.004
    assert Options(clip_mode="norm").clip == 1.0
    assert Options(clip_mode="norm").changed() == [("clip_mode", "norm")]
    checkpoints = Options(ensemble=3, ensemble_kind="checkpoints", epochs=5)
    assert checkpoints.checkpoint_average == "weights"
    assert ("checkpoint_average", "weights") not in checkpoints.changed()
    # Set to its default where it applies, an option is accepted and changes nothing.
    assert Options(model="mlp", dropout=0.3) == mlp
    assert Options(model="mlp", dropout=0.1).changed() == [("model", "mlp"), ("dropout", 0.1)]
    # metrics.json's options make the same Options again.
    assert Options(**mlp.as_dict()) == mlp and Options(**cnn.as_dict()) == cnn


def test_a_folder_is_exported_under_its_own_name_however_the_path_is_spelled(tmp_path, monkeypatch):
    (tmp_path / "pets").mkdir()
    monkeypatch.chdir(tmp_path)
    spellings = ["pets", "pets/", "./pets", "pets/.", "./pets//", str(tmp_path / "pets") + "/"]
    assert {Options(dataset=path).model_name for path in spellings} == {"pets"}
    (tmp_path / ".hidden set").mkdir()
    assert Options(dataset=".hidden set/").model_name == "hidden_set"
    # A TFDS name is not a path: its version stays in the name.
    assert Options(dataset="cifar10/3.0.2").model_name == "cifar10_3.0.2"


def test_a_model_name_longer_than_a_folder_name_may_be_is_refused():
    """255 characters is a folder name's limit (NAME_MAX) on the usual file systems. Catches a
    longer name accepted, which trained the whole run and then failed at its export."""
    assert Options(model_name="m" * 255).model_name == "m" * 255
    with pytest.raises(ValueError, match=r"at most 255 characters.*Received: model_name='mmm"):
        Options(model_name="m" * 256)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"dataset": ""}, "Expected a non-empty path or name. Received: dataset=''"),
        ({"logdir": 3}, "Expected a non-empty path or name. Received: logdir=3"),
        ({"export_dir": b"x"}, "Expected a non-empty path or name. Received: export_dir=b'x'"),
        ({"calibrate": "yes"}, "Expected True or False. Received: calibrate='yes'"),
        (
            {"model_name": ".hidden"},
            "Expected one folder name (letters, digits, '_', '.', '-'; not starting with '.'). "
            "Received: model_name='.hidden'",
        ),
        (
            {"augment": ["flip"]},
            "Expected a mapping such as {'translate': 0.1, 'flip': True}. "
            "Received: augment=['flip']",
        ),
        (
            {"augment": {"flip": 1}},
            "Expected True (flip takes no value). Received: augment['flip']=1",
        ),
        (
            {"strategy": "multi_worker", "patience": 1},
            "Expected 0 with strategy='multi_worker'. Received: patience=1",
        ),
        (
            {"strategy": "multi_worker", "ensemble": 2},
            "Expected 1 with strategy='multi_worker'. Received: ensemble=2",
        ),
        (
            {"ensemble": 2, "ensemble_kind": "checkpoints", "patience": 1},
            "Expected 0 with ensemble_kind='checkpoints' (it averages a run's last epochs). "
            "Received: patience=1",
        ),
        (
            {"ensemble": 6, "ensemble_kind": "checkpoints", "epochs": 5},
            "Expected at most epochs=5 members with ensemble_kind='checkpoints'. "
            "Received: ensemble=6",
        ),
        (
            {"learning_rate": 0.01, "learning_rate_final": 0.0100001},
            "Expected a final rate <= learning_rate=0.01. Received: learning_rate_final=0.0100001",
        ),
    ],
)
def test_a_bad_option_names_what_is_allowed_in_its_whole_message(options, message):
    with pytest.raises(ValueError) as raised:
        Options(**options)
    assert str(raised.value) == message


def test_the_limits_between_options_are_allowed_at_the_limit():
    assert Options(ensemble=5, ensemble_kind="checkpoints", epochs=5).ensemble == 5
    assert Options(learning_rate=0.01, learning_rate_final=0.01).learning_rate_final == 0.01
    assert Options(decay="none", learning_rate=0.01).learning_rate_final is None
    assert Options(strategy="multi_worker", patience=0, ensemble=1).strategy == "multi_worker"
    # A checkpoint "ensemble" of one is a plain run: patience may stop it.
    assert Options(ensemble=1, ensemble_kind="checkpoints", patience=3).patience == 3


def test_a_folder_named_by_the_home_or_by_dots_alone_still_names_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert Options(dataset="~").model_name == "me"  # the home folder's own name
    assert Options(dataset="...").model_name == "model"  # nothing left once the dots go


def freshly_built():
    """The options module executed anew: its fields are built when the module runs, so this
    sees what building them does now, not what it did when tfnn was first imported."""
    spec = importlib.util.spec_from_file_location(options_module.__name__, options_module.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_field_carries_what_its_flag_needs():
    """The help says where an option applies and what it takes there when unset."""
    fresh = freshly_built()
    meta = {field.name: field.metadata for field in fresh.fields()}
    assert meta["momentum"]["help"] == (
        "β of the momentum optimizer (only with optimizer='momentum'; unset: 0.9)"
    )
    assert meta["hidden_layers"]["help"] == (
        "sizes of the MLP's hidden layers (only with model='mlp'; unset: 256 256)"
    )
    assert meta["learning_rate_final"]["help"] == (
        "final rate of the decay (None: learning_rate / 100) (only with a decay other than 'none')"
    )
    assert meta["epochs"]["help"] == "passes over the training split"
    assert [meta["epochs"][key] for key in ("group", "kind", "choices", "many")] == [
        "training", int, None, False,
    ]  # fmt: skip
    assert [meta["hidden_layers"][key] for key in ("kind", "many")] == [int, True]
    assert [meta["model"][key] for key in ("kind", "choices")] == [str, ("cnn", "mlp")]
    assert meta["data_dir"]["kind"] is str  # None by default: a text flag
    assert [field.name for field in fields()][:3] == ["dataset", "data_dir", "validation_fraction"]
    # An option whose default is None takes None, and is checked when set.
    assert fresh.Options(data_dir=None).data_dir is None
    assert fresh.Options(data_dir="tfds").data_dir == "tfds"
    with pytest.raises(ValueError) as raised:
        fresh.Options(data_dir="")
    assert str(raised.value) == "Expected a non-empty path or name. Received: data_dir=''"


def test_a_cnn_spec_refusal_names_the_cnn_option():
    with pytest.raises(ValueError) as raised:
        Options(cnn="")
    assert str(raised.value) == "Expected a non-empty string. Received: cnn=''"
    with pytest.raises(ValueError) as raised:
        Options(cnn="C-16-5-x-same,F")
    message = str(raised.value)
    assert message.startswith("Expected a CNN spec string; ")
    assert message.endswith(". Received: cnn='C-16-5-x-same,F'")


def test_names_keep_their_case_and_augment_reads_every_part():
    assert Options(dataset="My-Set.v2").model_name == "My-Set.v2"
    assert Options(dataset="Xenon").model_name == "Xenon"  # only dots are stripped
    assert Options(dataset="digits", augment="flip,translate=0.1").augment == {
        "flip": True,
        "translate": 0.1,
    }


def test_augment_reads_plus_as_a_comma_and_none_as_no_augmentation():
    """Catches a sweep's choice "shift=10+stretch=0.1" read as one part (shift=10+stretch, a
    bad integer) or "none" refused as an unknown augmentation."""
    assert Options(augment="shift=10+stretch=0.1").augment == {"shift": 10, "stretch": 0.1}
    assert Options(augment="flip+translate=0.1,rotate=5", dataset="digits").augment == {
        "flip": True,
        "translate": 0.1,
        "rotate": 5.0,
    }
    assert Options(augment="none").augment == {} and Options(augment=" None ").augment == {}
    with pytest.raises(ValueError, match=r"augment\['none'\]"):
        Options(augment="none+flip", dataset="digits")  # none alone, or not at all


def test_augment_amounts_are_checked_at_both_ends_of_their_range():
    shift = Options(dataset="mnist1d", augment={"shift": 0}).augment
    assert shift == {"shift": 0} and Options(augment={"shift": 1000}).augment == {"shift": 1000}
    assert Options(augment={"rotate": 0}).augment == {"rotate": 0.0}
    refused = [
        ({"shift": -1}, "an integer in [0, 1000]. Received: augment['shift']=-1"),
        ({"shift": 1001}, "an integer in [0, 1000]. Received: augment['shift']=1001"),
        ({"rotate": -1}, "a finite number in [0.0, 180.0]. Received: augment['rotate']=-1"),
        ({"rotate": 181}, "a finite number in [0.0, 180.0]. Received: augment['rotate']=181"),
        (
            {"tilt": 3},
            f"an augmentation of {tuple(options_module.AUGMENTATIONS)}. "
            "Received: augment['tilt']=3",
        ),
    ]
    for augment, message in refused:
        with pytest.raises(ValueError) as raised:
            Options(augment=augment)
        assert str(raised.value) == f"Expected {message}"


def test_the_seed_is_a_32_bit_unsigned_integer_at_both_ends():
    """numpy's and Keras's seeds are in [0, 2**32 - 1]: catches the seed checked as any
    integer (`validation.integer` without bounds), which let -1 and 2**32 reach numpy."""
    assert Options(seed=0).seed == 0
    assert Options(seed=2**32 - 1).seed == 2**32 - 1
    for seed in (-1, 2**32):
        with pytest.raises(ValueError) as raised:
            Options(seed=seed)
        assert str(raised.value) == f"Expected an integer in [0, 4294967295]. Received: seed={seed}"


@pytest.mark.parametrize("kind", ["init", "bagging"])
def test_an_ensembles_last_member_seed_stays_within_32_bits(kind):
    """Member i trains with seed + i - 1: catches a check of the seed alone, which let member 2
    of `--ensemble 2 --seed 4294967295` overflow after member 1 had trained."""
    limit = 2**32 - 1
    assert Options(ensemble=3, ensemble_kind=kind, seed=limit - 2).seed == limit - 2
    with pytest.raises(ValueError) as raised:
        Options(ensemble=3, ensemble_kind=kind, seed=limit - 1)
    message = str(raised.value)
    assert message.endswith(f"Received: seed={limit - 1}") and "\n" not in message
    assert f"seed + ensemble - 1 = {limit + 1}" in message and "ensemble=3" in message
    # A checkpoint ensemble is one run with one seed.
    assert Options(ensemble=3, ensemble_kind="checkpoints", epochs=5, seed=limit).seed == limit


def test_label_smoothing_is_below_one():
    """ε = 1 makes every target uniform (nothing left to learn): catches the check's interval
    closed at 1 (`validation.number(low=0, high=1)` without `high_open`), as dropout's is open."""
    assert Options(label_smoothing=0).label_smoothing == 0.0
    assert Options(label_smoothing=0.999).label_smoothing == 0.999
    with pytest.raises(ValueError) as raised:
        Options(label_smoothing=1)
    assert str(raised.value) == "Expected a finite number in [0, 1). Received: label_smoothing=1"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("translate=0.1,translate=0.3", "translate"),
        ("flip,flip", "flip"),
        ("shift=10+stretch=0.1+shift=5", "shift"),
    ],
)
def test_an_augmentation_named_twice_is_refused_naming_it(text, name):
    """Catches `result[name] = …` overwriting an earlier part: translate=0.1,translate=0.3
    silently trained with 0.3, and flip,flip was taken as flip."""
    with pytest.raises(ValueError) as raised:
        Options(augment=text, dataset="mnist1d")
    assert str(raised.value) == (
        f"Expected each augmentation named once ({name!r} is twice). Received: augment={text!r}"
    )
    # Named once, each is taken.
    assert Options(augment="translate=0.1,flip", dataset="digits").augment == {
        "translate": 0.1,
        "flip": True,
    }


@pytest.mark.parametrize("option", ["logdir", "export_dir"])
def test_an_output_folder_inside_the_dataset_folder_is_refused(tmp_path, monkeypatch, option):
    """`--dataset d --logdir d/train` wrote the run folder into the data (a new class of
    figures): catches the output folders accepted without comparing them to the data set's.
    The folder itself and anything under it (however spelled) are refused; a sibling whose
    name only starts the same is not inside."""
    data = tmp_path / "pets"
    (data / "train").mkdir(parents=True)
    (tmp_path / "link").symlink_to(data)
    monkeypatch.chdir(tmp_path)
    for inside in (data, data / "train", data / "train" / "new", "pets/../pets/x", "link/train"):
        with pytest.raises(ValueError) as raised:
            Options(dataset=str(data), **{option: str(inside)})
        assert str(raised.value) == (
            f"Expected a folder outside the dataset folder {str(data)!r} (what a run writes "
            f"there would be read as data). Received: {option}={str(inside)!r}"
        )
    for outside in (tmp_path, tmp_path / "pets2", tmp_path / "logs"):
        assert getattr(Options(dataset=str(data), **{option: str(outside)}), option) == str(outside)
    # A catalog name is no folder: an output folder of the same name is fine.
    assert getattr(Options(dataset="mnist", **{option: "mnist"}), option) == "mnist"


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"ensemble": 2}, 2),  # the smallest ensemble
        ({"ensemble": 5, "ensemble_kind": "bagging"}, 5),
        ({"ensemble": 1}, 0),  # one run
        ({"ensemble": 3, "ensemble_kind": "checkpoints"}, 0),  # one run, its epochs
        # logical CPU devices are made where a process starts; a pool worker has none
        ({"ensemble": 2, "strategy": "mirrored", "cpu_devices": 2}, 0),
    ],
)
def test_pooled_members_are_an_independent_ensembles_members(flags, expected):
    """Catches a one-model run (or a checkpoint ensemble, one training) counted as trainings
    for the pool, or an ensemble of two not counted."""
    assert Options(dataset="digits", **flags).pooled_members() == expected


def test_workers_with_logical_cpu_devices_are_refused_naming_them():
    """Members on pool workers cannot have --cpu_devices (each failed with "Expected
    cpu_devices 0, or as many as the process started with"). Catches --workers 2 accepted
    beside cpu_devices=2."""
    with pytest.raises(ValueError, match=r"cpu_devices <= 1.*Received: workers=2"):
        Options(ensemble=2, strategy="mirrored", cpu_devices=2, workers=2)


@pytest.mark.parametrize("name", ["dataset", "data_dir", "logdir", "export_dir"])
def test_a_path_option_takes_a_pathlib_path_as_its_text(tmp_path, name):
    """Catches a pathlib.Path refused (tfnn.train(logdir=tmp_path / "logs") as a Keras user
    writes it), or kept as a Path (the options go to JSON and to the run's key as text)."""
    value = tmp_path / "folder"
    if name == "dataset":
        value.mkdir()  # an image folder
        (value / "train").mkdir()
        (value / "train" / "a").mkdir()
    options = Options(**{name: value})
    assert getattr(options, name) == str(value) and type(getattr(options, name)) is str
    assert options.as_dict()[name] == str(value)
