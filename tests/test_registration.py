"""`import tfnn` registers every serializable with Keras, without importing TensorFlow itself."""

import importlib
import subprocess
import sys
import types

import keras
import numpy as np
import pytest

import tfnn
from tfnn import constraints, initializers, losses, metrics, regularizers
from tfnn.layers import BatchNormalization, Dense, Dropout


def run_python(script, cwd):
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def test_a_keras_file_of_tfnn_objects_loads_after_import_tfnn_alone(tmp_path):
    """Layers, a loss, a metric, a regularizer, a constraint and an initializer, all tfnn's,
    restored in a fresh process that imports only tfnn and keras (in either order)."""
    model = keras.Sequential(
        [
            keras.Input((4,)),
            Dense(
                6,
                activation="tanh",
                kernel_initializer=initializers.GlorotUniform(seed=1),
                kernel_regularizer=regularizers.L2(0.01),
                kernel_constraint=constraints.MaxNorm(2.0),
            ),
            BatchNormalization(),
            Dropout(0.2),
            Dense(3),
        ]
    )
    model.compile(loss=losses.SoftmaxNLL(0.1), metrics=[metrics.ExpectedCalibrationError()])
    path = tmp_path / "model.keras"
    model.save(path)
    x = np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4)
    expected = model(x).numpy().ravel()
    for imports in ("import tfnn\nimport keras", "import keras\nimport tfnn"):
        script = (
            f"{imports}\nimport numpy as np\n"
            f"model = keras.saving.load_model({str(path)!r})\n"
            f"x = np.linspace(-1, 1, 8, dtype='float32').reshape(2, 4)\n"
            "print(type(model.loss).__name__, *model(x).numpy().ravel())\n"
        )
        out = run_python(script, tmp_path)
        assert out[0] == "SoftmaxNLL"
        np.testing.assert_allclose(np.array(out[1:], dtype=float), expected, rtol=1e-5)


def test_import_tfnn_is_cheap(tmp_path):
    out = run_python(
        "import sys\nimport tfnn\nprint('tensorflow' in sys.modules, 'keras' in sys.modules)",
        tmp_path,
    )
    assert out == ["False", "False"]


def test_a_submodule_is_reached_from_the_package_without_importing_it():
    """PEP 562: `tfnn.layers.Dense` after `import tfnn` alone, the class Keras registered."""
    out = run_python(
        "import sys\nimport tfnn\nprint('tfnn.layers' in sys.modules)\nimport keras\n"
        "print(tfnn.layers.Dense is keras.saving.get_registered_object('tfnn>Dense'))\n"
        "print(tfnn.data.load.__module__)",
        ".",
    )
    assert out == ["False", "True", "tfnn.data.loading"]


def test_dir_lists_the_lazy_submodules():
    names = dir(tfnn)
    assert {"layers", "data", "export", "recipe", "serving", "tasks", "train"} <= set(names)


def test_an_unknown_attribute_of_the_package_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="'tfnn' has no attribute 'layer'"):
        tfnn.layer  # noqa: B018


def test_every_serializable_module_is_registered():
    """Every module named in tfnn.SERIALIZABLES registers under the "tfnn" package."""
    registered = keras.saving.get_custom_objects()
    for name in ("tfnn>Dense", "tfnn>SoftmaxNLL", "tfnn>L2", "tfnn>MaxNorm", "tfnn>ProximalL1"):
        assert name in registered, name
    assert callable(tfnn.train)


# The modules a user imports components from (README's table of modules with a Keras twin,
# and those beside them): each says what it exports in __all__ and holds nothing else public.
PUBLIC_MODULES = (
    "tfnn",
    "tfnn.activations",
    "tfnn.calibration",
    "tfnn.callbacks",
    "tfnn.clipping",
    "tfnn.constraints",
    "tfnn.data",
    "tfnn.data.loading",
    "tfnn.data.pipeline",
    "tfnn.data.splits",
    "tfnn.data.statistics",
    "tfnn.distribute",
    "tfnn.export",
    "tfnn.initializers",
    "tfnn.layers",
    "tfnn.losses",
    "tfnn.metrics",
    "tfnn.models",
    "tfnn.models.ensemble",
    "tfnn.objectives",
    "tfnn.optimizer_factory",
    "tfnn.optimizers",
    "tfnn.plots",
    "tfnn.recipe",
    "tfnn.regularizers",
    "tfnn.serving",
    "tfnn.tasks",
    "tfnn.testing",
    "tfnn.validation",
)


def test_the_package_holds_no_module_but_its_own():
    foreign = {
        name: value.__name__
        for name, value in vars(tfnn).items()
        if isinstance(value, types.ModuleType) and not value.__name__.startswith("tfnn.")
    }
    assert foreign == {}


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_name_of_a_public_module_is_in_its_all(name):
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert exported <= set(dir(module)), exported - set(dir(module))
    stray = {
        attribute
        for attribute, value in vars(module).items()
        if not attribute.startswith("_")
        and attribute not in exported
        and not (isinstance(value, types.ModuleType) and value.__name__.startswith("tfnn."))
    }
    assert stray == set()
