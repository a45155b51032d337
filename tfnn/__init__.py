"""tfnn: the lecture 'Training Neural Networks II' as Keras 3 components, and its training
recipe as a library.

    from tfnn import activations, constraints, initializers, losses, metrics, regularizers
    from tfnn.layers import Dense, Dropout, GaussianNoise, PReLU, Activation
    from tfnn.models.ensemble import ensemble, monte_carlo_dropout

    metrics = tfnn.train(dataset="digits", model="mlp", epochs=5)   # the whole recipe

`import tfnn` registers every tfnn serializable with Keras (layers, losses,
metrics, regularizers, constraints, initializers, optimizer wrappers), so a
`.keras` file that uses them loads with `keras.saving.load_model` and no other
import. It does so when Keras is imported (at once if it already is): `import
tfnn` itself stays cheap (~0.1 s, against ~4 s for TensorFlow), which lets the
command lines check their flags before TensorFlow starts.

`tfnn.export` writes SavedModels that `tfnn-serve` (tfnn.serving) and TensorFlow
Serving serve; `tfnn.distribute` names the tf.distribute strategies the recipe uses.

The public submodules are attributes of the package without an import of their own
(`import tfnn; tfnn.layers.Dense`): each is imported when first reached (PEP 562).
"""

__version__ = "0.1.0"
__all__ = ["SERIALIZABLES", "sweep", "train"]

# The modules whose import registers tfnn's serializables with Keras.
SERIALIZABLES = (
    "tfnn.activations",
    "tfnn.constraints",
    "tfnn.initializers",
    "tfnn.regularizers",
    "tfnn.losses",
    "tfnn.metrics",
    "tfnn.layers",
    "tfnn.optimizers",
    "tfnn.clipping",
    "tfnn.models.ensemble",
)


# The submodules `tfnn.<name>` reaches without an import of its own (PEP 562).
_SUBMODULES = (
    "activations",
    "calibration",
    "callbacks",
    "clipping",
    "constraints",
    "data",
    "distribute",
    "export",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "objectives",
    "optimizer_factory",
    "optimizers",
    "plots",
    "recipe",
    "regularizers",
    "serving",
    "sweep",
    "tasks",
    "testing",
    "validation",
)


def __getattr__(name):
    """Imports a public submodule when it is first reached as `tfnn.<name>`."""
    if name not in _SUBMODULES:
        raise AttributeError(f"module 'tfnn' has no attribute {name!r}")
    import importlib  # here, so that the package's namespace holds only its own names

    return importlib.import_module(f"tfnn.{name}")  # the import also sets it on the package


def __dir__():
    return sorted({*globals(), *_SUBMODULES})


def _register(keras_module):
    import importlib  # here, so that the package's namespace holds only its own names

    for name in SERIALIZABLES:
        importlib.import_module(name)


def _register_when_keras_is_imported():
    import wrapt

    wrapt.register_post_import_hook(_register, "keras")


_register_when_keras_is_imported()


def train(*, callbacks=(), stopwatch=None, test_and_export=True, **options):
    """Trains, evaluates, draws and exports a network with the lecture's recipe.

    `options` are named as train.py's flags, with the same defaults (see
    `tfnn.recipe.options.Options`); `callbacks` are extra Keras callbacks;
    `stopwatch` a `tfnn.recipe.phases.Stopwatch` timing the run's phases.
    Returns the metrics dictionary that the run folder's metrics.json holds
    (its "seconds": the phases' wall time). `test_and_export` False stops after
    training and the validation figures, leaving the run to a later call with
    True (a sweep's trial; see `tfnn.recipe.train.train`).

    Raises:
        ValueError: a bad option, or one the data set cannot take, before anything is written.
    """
    # Imported on the first call: the recipe imports TensorFlow (~4 s).
    from tfnn.recipe.train import train as run_recipe

    return run_recipe(
        callbacks=callbacks, stopwatch=stopwatch, test_and_export=test_and_export, **options
    )
