"""The checks every tfnn component must pass, in one place.

A component's test is a few calls of these, parametrized over shapes and seeds:

- `check_layer_parity`, `check_loss_parity`: equal to the Keras/TensorFlow
  twin in forward values and in gradients (with respect to inputs and
  weights), the twin's weights copied into ours.
- `check_gradient`: an explicit (`tf.custom_gradient`) gradient equals
  autodiff through a plain reference expression and finite differences
  (`tf.test.compute_gradient`, in float64).
- `check_config_round_trip`, `check_save_load`: `get_config`/`from_config`,
  Keras (de)serialization and `.keras` files restore the same object, without
  `custom_objects`; `check_copies`: clones and configs given the weights
  predict like the model (its preprocessing travels with it).
- `check_in_models`: the layer works in Sequential, Functional and subclassed
  models under `Model.fit`, eagerly and compiled.
- `check_mixed_precision`: under `mixed_float16`/`mixed_bfloat16` variables
  stay float32, outputs take the compute dtype, values and gradients are finite.
- `sample_moments_close`: statistical checks for random components.
- `modules_imported_by`: what a statement imports in a fresh interpreter (import costs).

Every check raises `AssertionError` with what differed; none of them passes
vacuously (see tests/test_testing.py, which feeds each a broken component).
"""

import contextlib as _contextlib
import inspect as _inspect
import pathlib as _pathlib
import subprocess as _subprocess
import sys as _sys
import tempfile as _tempfile

import keras as _keras
import numpy as _np
import tensorflow as _tf

__all__ = [
    "MIXED_POLICIES",
    "SEEDS",
    "HeadedModel",
    "assert_close",
    "away_from_kinks",
    "check_config_round_trip",
    "check_copies",
    "check_gradient",
    "check_in_models",
    "check_layer_parity",
    "check_loss_parity",
    "check_mixed_precision",
    "check_save_load",
    "dtype_policy",
    "modules_imported_by",
    "random_cotangent",
    "sample_moments_close",
]

SEEDS = (0, 1, 2)
MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


def assert_close(actual, expected, *, rtol=1e-6, atol=1e-6, what="value"):
    """`actual` ≈ `expected` element-wise, shapes equal, with a readable message."""
    actual = _np.asarray(_tf.convert_to_tensor(actual), dtype=_np.float64)
    expected = _np.asarray(_tf.convert_to_tensor(expected), dtype=_np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != expected {expected.shape}")
    _np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def away_from_kinks(x, margin=1e-2):
    """x (as float64) with entries near 0 moved to ±0.5, so finite differences of
    ReLU-like functions never straddle the kink."""
    x = _np.array(x, dtype=_np.float64)
    near = _np.abs(x) < margin
    x[near] = _np.where(x[near] >= 0, 0.5, -0.5)
    return x


def random_cotangent(shape, seed, dtype=_tf.float32):
    """Upstream gradient weights for a vector output: distinct per element, so a
    gradient function that ignores `dy` (or mixes examples) is caught."""
    return _tf.random.stateless_uniform(shape, seed=(seed, 7), minval=0.5, maxval=2.0, dtype=dtype)


# -- explicit gradients ----------------------------------------------------------------------


def check_gradient(fn, reference, inputs, *, wrt=None, seed=0, rtol=1e-5, atol=1e-6, delta=1e-4):
    """fn's gradient equals autodiff through `reference` and finite differences.

    Args:
        fn: the function under test, fn(*inputs) -> tensor (its gradient may be
            a `tf.custom_gradient`).
        reference: the same mathematics written with plain differentiable ops.
        inputs: float64 numpy arrays or tensors (float64, so the finite
            differences are accurate).
        wrt: indices of the inputs to differentiate (default: all).
        seed: seeds the upstream gradient weights.
    """
    inputs = [_tf.convert_to_tensor(x) for x in inputs]
    wrt = list(range(len(inputs))) if wrt is None else list(wrt)

    def weighted_grads(f):
        with _tf.GradientTape() as tape:
            for i in wrt:
                tape.watch(inputs[i])
            out = f(*inputs)
            total = _tf.reduce_sum(
                random_cotangent(_tf.shape(out), seed, _tf.float64) * _tf.cast(out, _tf.float64)
            )
        return out, tape.gradient(total, [inputs[i] for i in wrt])

    value, grads = weighted_grads(fn)
    expected_value, expected_grads = weighted_grads(reference)
    assert_close(value, expected_value, rtol=rtol, atol=atol, what="value vs reference")
    for i, g, e in zip(wrt, grads, expected_grads, strict=True):
        if g is None:
            raise AssertionError(f"input {i}: no gradient")
        assert_close(g, e, rtol=rtol, atol=atol, what=f"gradient of input {i} vs autodiff")

    for i in wrt:

        def f_i(x, i=i):
            args = list(inputs)
            args[i] = x
            return fn(*args)

        theoretical, numerical = _tf.test.compute_gradient(f_i, [inputs[i]], delta=delta)
        assert_close(
            theoretical[0],
            numerical[0],
            rtol=1e-3,
            atol=1e-5,
            what=f"gradient of input {i} vs finite differences",
        )


# -- parity with Keras twins -----------------------------------------------------------------


def _watched_call(fn, inputs, variables, seed):
    with _tf.GradientTape() as tape:
        tape.watch(inputs)
        out = fn()
        total = _tf.reduce_sum(random_cotangent(_tf.shape(out), seed) * _tf.cast(out, _tf.float32))
    return out, tape.gradient(total, [inputs, *variables])


def check_layer_parity(ours, theirs, inputs, *, training=False, seed=0, rtol=1e-5, atol=1e-6):
    """Our layer equals the Keras twin: outputs and gradients for inputs and weights.

    Both layers are built on `inputs`; the twin's weights are copied into ours
    (so the two must store the same weights in the same order and shapes).
    """
    inputs = _tf.convert_to_tensor(inputs)
    ours(inputs, training=False)
    theirs(inputs, training=False)
    our_shapes = [tuple(w.shape) for w in ours.weights]
    their_shapes = [tuple(w.shape) for w in theirs.weights]
    if our_shapes != their_shapes:
        raise AssertionError(f"weights differ in shape: {our_shapes} != {their_shapes}")
    ours.set_weights(theirs.get_weights())

    our_out, our_grads = _watched_call(
        lambda: ours(inputs, training=training), inputs, ours.trainable_weights, seed
    )
    their_out, their_grads = _watched_call(
        lambda: theirs(inputs, training=training), inputs, theirs.trainable_weights, seed
    )
    assert_close(our_out, their_out, rtol=rtol, atol=atol, what="layer output vs Keras")
    names = ["inputs", *(w.path for w in ours.trainable_weights)]
    for name, g, e in zip(names, our_grads, their_grads, strict=True):
        if (g is None) != (e is None):
            raise AssertionError(f"gradient of {name}: one side is None")
        if g is not None:
            assert_close(g, e, rtol=rtol, atol=atol, what=f"gradient of {name} vs Keras")


def check_loss_parity(
    ours,
    theirs,
    y_true,
    y_pred,
    *,
    sample_weight=None,
    their_y_true=None,
    seed=0,
    rtol=1e-5,
    atol=1e-6,
):
    """Our `Loss` equals the Keras twin: the reduced value and ∂loss/∂y_pred.

    `their_y_true` gives the twin the same gold in its own format (e.g. one-hot
    where ours takes indices). With reduction "none" the per-example values
    are weighted by distinct upstream gradients, so a gradient that ignores
    `dy` is caught too.
    """
    y_pred = _tf.convert_to_tensor(y_pred)
    their_y_true = y_true if their_y_true is None else their_y_true
    results = []
    for loss, gold in ((ours, y_true), (theirs, their_y_true)):
        with _tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = loss(gold, y_pred, sample_weight=sample_weight)
            total = _tf.reduce_sum(
                random_cotangent(_tf.shape(value), seed) * _tf.cast(value, _tf.float32)
            )
        results.append((value, tape.gradient(total, y_pred)))
    (value, grad), (expected_value, expected_grad) = results
    assert_close(value, expected_value, rtol=rtol, atol=atol, what="loss value vs Keras")
    assert_close(grad, expected_grad, rtol=rtol, atol=atol, what="loss gradient vs Keras")


# -- serialization ---------------------------------------------------------------------------


def check_config_round_trip(obj):
    """The config names every constructor argument; get_config → from_config, and
    Keras's serialize → deserialize, give an equal config."""
    config = obj.get_config()
    parameters = _inspect.signature(type(obj).__init__).parameters.values()
    missing = [
        p.name
        for p in parameters
        if p.name != "self"
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.name not in config
    ]
    if missing:
        raise AssertionError(
            f"{type(obj).__name__}.get_config() lacks constructor arguments {missing}"
        )
    clone = type(obj).from_config(config)
    if clone.get_config() != config:
        raise AssertionError(f"from_config changed the config:\n{config}\n!=\n{clone.get_config()}")
    restored = _keras.saving.deserialize_keras_object(_keras.saving.serialize_keras_object(obj))
    if type(restored) is not type(obj):
        raise AssertionError(f"deserialized a {type(restored).__name__}, not {type(obj).__name__}")
    if restored.get_config() != config:
        raise AssertionError(
            f"deserialization changed the config:\n{config}\n!=\n{restored.get_config()}"
        )
    return clone


def check_save_load(model, inputs, *, atol=1e-6):
    """A `.keras` round trip restores the same classes and the same predictions."""
    expected = model(inputs, training=False)
    with _tempfile.TemporaryDirectory() as folder:
        path = _pathlib.Path(folder) / "model.keras"
        model.save(path)
        loaded = _keras.saving.load_model(path)
    for original, copy in zip(model.layers, loaded.layers, strict=True):
        if type(original) is not type(copy):
            raise AssertionError(f"loaded a {type(copy).__name__} for a {type(original).__name__}")
    assert_close(loaded(inputs, training=False), expected, atol=atol, what="loaded model output")
    return loaded


def check_copies(model, inputs, *, atol=1e-6):
    """Every copy of a Functional or Sequential model predicts what the model predicts.

    The copies are the ones ensembles and exports make: `keras.models.clone_model`
    and `from_config`, each given `set_weights(model.get_weights())`, and a
    `.keras` round trip. A layer holding state outside its config and weights
    (an adapted `keras.layers.Normalization`) fails the first two.
    """
    expected = model(inputs, training=False)
    copies = {
        "clone_model": _keras.models.clone_model(model),
        "from_config": type(model).from_config(model.get_config()),
    }
    for how, copy in copies.items():
        copy.set_weights(model.get_weights())
        assert_close(copy(inputs, training=False), expected, atol=atol, what=f"{how} output")
    check_save_load(model, inputs, atol=atol)


# -- use inside models -----------------------------------------------------------------------


class HeadedModel(_keras.Model):
    """A subclassed model: `layer`, then `head`."""

    def __init__(self, layer, head, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        self.head = head

    def call(self, inputs, training=False):
        return self.head(self.layer(inputs, training=training))


def check_in_models(make_layer, input_shape, *, batch=16, seed=0):
    """The layer trains inside Sequential, Functional and subclassed models.

    `make_layer()` returns a fresh layer. Each model is the layer followed by
    a Dense head, fitted for two epochs with SGD on random regression data
    (eagerly for Sequential, as a compiled tf.function otherwise); the loss
    must be finite and the predictions shaped [batch, 1].
    """
    rng = _np.random.default_rng(seed)
    x = rng.normal(size=(batch, *input_shape)).astype("float32")
    y = rng.normal(size=(batch, 1)).astype("float32")

    def head():
        return _keras.Sequential([_keras.layers.Flatten(), _keras.layers.Dense(1)])

    inputs = _keras.Input(input_shape)
    models = {
        "sequential": _keras.Sequential([_keras.Input(input_shape), make_layer(), head()]),
        "functional": _keras.Model(inputs, head()(make_layer()(inputs))),
        "subclassed": HeadedModel(make_layer(), head()),
    }
    for kind, model in models.items():
        model.compile(_keras.optimizers.SGD(0.01), "mse", run_eagerly=kind == "sequential")
        history = model.fit(x, y, epochs=2, batch_size=batch // 2, verbose=0)
        if not _np.all(_np.isfinite(history.history["loss"])):
            raise AssertionError(f"{kind}: loss not finite: {history.history['loss']}")
        prediction = model.predict(x, verbose=0)
        if prediction.shape != (batch, 1):
            raise AssertionError(f"{kind}: predictions shaped {prediction.shape}")


# -- mixed precision -------------------------------------------------------------------------


@_contextlib.contextmanager
def dtype_policy(name):
    """Sets Keras's global dtype policy inside the block, restoring it after."""
    previous = _keras.config.dtype_policy()
    _keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        _keras.config.set_dtype_policy(previous)


def check_mixed_precision(make_layer, inputs, policy, *, training=True):
    """Under `policy`: float32 variables, outputs in the compute dtype, finite values and grads."""
    with dtype_policy(policy):
        layer = make_layer()
        compute_dtype = _keras.DTypePolicy(policy).compute_dtype
        with _tf.GradientTape() as tape:
            x = _tf.cast(inputs, compute_dtype)
            tape.watch(x)
            out = layer(x, training=training)
            total = _tf.reduce_sum(_tf.cast(out, _tf.float32))
        grads = tape.gradient(total, [x, *layer.trainable_weights])
    for w in layer.weights:
        if w.dtype != "float32":
            raise AssertionError(f"{policy}: variable {w.path} is {w.dtype}, not float32")
    if out.dtype != compute_dtype:
        raise AssertionError(f"{policy}: output is {out.dtype.name}, not {compute_dtype}")
    if not _np.all(_np.isfinite(_tf.cast(out, _tf.float32))):
        raise AssertionError(f"{policy}: output not finite")
    for g in grads:
        if g is not None and not _np.all(_np.isfinite(_tf.cast(g, _tf.float32))):
            raise AssertionError(f"{policy}: gradient not finite")


# -- random components -----------------------------------------------------------------------


def sample_moments_close(sample, *, mean, variance, variance_rtol, z=5.0):
    """The sample's mean and variance match the distribution's.

    The mean must lie within z standard errors, z·√(variance/N), of `mean`
    (z = 5: a correct sampler fails with probability < 1e-6); the variance
    within `variance_rtol` of `variance` (state it in the test, from the
    sample size).
    """
    sample = _np.asarray(sample, dtype=_np.float64).ravel()
    mean_atol = z * _np.sqrt(variance / sample.size)
    if abs(sample.mean() - mean) > mean_atol:
        raise AssertionError(f"sample mean {sample.mean():.6f}, expected {mean} ± {mean_atol:.6f}")
    if abs(sample.var() - variance) > variance_rtol * variance:
        raise AssertionError(
            f"sample variance {sample.var():.6f}, expected {variance:.6f} ± {variance_rtol:.0%}"
        )


def modules_imported_by(statement, *, timeout=120):
    """The names in `sys.modules` after `statement` runs in a fresh interpreter (this one's
    executable and environment): what importing a module costs, apart from what the
    calling process already imported."""
    script = f"{statement}\nimport sys\nprint(*sorted(sys.modules))"
    result = _subprocess.run(
        [_sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return frozenset(result.stdout.split())
