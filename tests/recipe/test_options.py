import re

import pytest

from tfnn.recipe.options import DEFAULTS, Options

BAD = [
    ({"dropout": 1.0}, "dropout=1.0"),
    ({"dropout": -0.1}, "dropout=-0.1"),
    ({"learning_rate": 0}, "learning_rate=0"),
    ({"learning_rate": float("nan")}, "learning_rate=nan"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"batch_size": 2.5}, "batch_size=2.5"),
    ({"epochs": True}, "epochs=True"),
    ({"hidden_layers": [100, 0]}, "hidden_layers=[100, 0]"),
    ({"hidden_layers": "100"}, "hidden_layers='100'"),
    ({"l2": -1e-4}, "l2=-0.0001"),
    ({"label_smoothing": 1.5}, "label_smoothing=1.5"),
    ({"clip": 0}, "clip=0"),
    ({"clip_mode": "elementwise"}, "clip_mode='elementwise'"),
    ({"optimizer": "lbfgs"}, "optimizer='lbfgs'"),
    ({"activation": "softplus"}, "activation='softplus'"),
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
    ({"checkpoint_average": "median"}, "checkpoint_average='median'"),
    ({"mc_dropout": -1}, "mc_dropout=-1"),
    ({"verbose": 3}, "verbose=3"),
]


@pytest.mark.parametrize("options, received", BAD)
def test_a_bad_option_is_one_line_in_keras_form_naming_it(options, received):
    with pytest.raises(ValueError) as raised:
        Options(**options)
    message = str(raised.value)
    assert message.startswith("Expected ")
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
    options = Options(hidden_layers=[32, 16], augment="translate=0.1,flip", learning_rate=1)
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
