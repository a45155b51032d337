"""E2: initialization of a 10-layer tanh MLP (Glorot & Bengio 2010, figures 3–7).

At initialization, on 1,000 training signals: each hidden layer's activation standard
deviation, its share of saturated units (|tanh| > 0.99) and the standard deviation of the
back-propagated gradient ∂L/∂z of its pre-activations; then the validation accuracy while
SGD with momentum trains each network.
"""

import functools

import numpy as np

from tfnn.experiments import common

ITEM = "E2"
TITLE = "initialization"
CLAIM = (
    "Through 10 tanh layers, Glorot's U[±√(6/(m+n))] keeps every layer's activation and "
    "gradient standard deviation within [½, 2]× their geometric mean over the layers, where "
    "zeros leave both at 0, N(0, 1) saturates the units and U[±1/√n] shrinks the activations "
    "layer by layer; the Glorot network trains best."
)
DEPTH, WIDTH = 10, 100
INITS = ("zeros", "N(0, 1)", "U[±1/√n]", "Glorot")


def initializer(name, seed):
    """The kernel initializer `name` of INITS, seeded."""
    # TensorFlow inside the measurement, never at the top: see tfnn.experiments.common.
    import keras

    from tfnn import initializers

    return {
        "zeros": lambda: keras.initializers.Zeros(),
        "N(0, 1)": lambda: keras.initializers.RandomNormal(0.0, 1.0, seed=seed),
        "U[±1/√n]": lambda: initializers.FanInUniform(seed=seed),
        "Glorot": lambda: initializers.GlorotUniform(seed=seed),
    }[name]()


def network(init, seed):
    """DEPTH tanh layers of WIDTH units and a linear output, every kernel from `init`."""
    import keras

    from tfnn.layers import Activation, Dense

    layers = [keras.Input((40,))]
    for depth in range(DEPTH):
        layers += [Dense(WIDTH, kernel_initializer=init(seed * 100 + depth)), Activation("tanh")]
    layers.append(Dense(10, kernel_initializer=init(seed * 100 + DEPTH)))
    return keras.Sequential(layers)


def at_initialization(model, x, y):
    """Per hidden layer: std of tanh(z), share of |tanh(z)| > 0.99, std of ∂L/∂z."""
    import tensorflow as tf

    from tfnn.layers import Dense

    with tf.GradientTape() as tape:
        h, pre_activations, activations = tf.constant(x), [], []
        for layer in model.layers:
            h = layer(h)
            (pre_activations if isinstance(layer, Dense) else activations).append(h)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, h))
    gradients = tape.gradient(loss, pre_activations[:-1])
    return {
        "activation_std": [float(np.std(a)) for a in activations],
        "saturated": [float(np.mean(np.abs(a) > 0.99)) for a in activations],
        "gradient_std": [float(np.std(g)) for g in gradients],
    }


def compiled(model):
    import keras

    from tfnn import losses

    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), losses.SoftmaxNLL())
    return model


def measure(seed, size):
    import keras

    data = common.dataset("mnist1d", seed, size.pick(1000, None))
    (x, y), (x_val, y_val) = data.train, data.validation
    mean, std = x.mean(axis=0), x.std(axis=0)
    x, x_val = ((x - mean) / std).astype("float32"), ((x_val - mean) / std).astype("float32")
    result = {}
    for name in INITS:
        keras.utils.set_random_seed(seed)
        build = functools.partial(network, functools.partial(initializer, name), seed)
        figures = at_initialization(build(), x[:1000], y[:1000])
        model = common.reused("init", lambda build=build: compiled(build()), build)
        accuracy = common.EpochFigures(lambda m: common.accuracy(m(x_val), y_val))
        model.fit(x, y, batch_size=100, epochs=size.pick(2, 20), callbacks=[accuracy], verbose=0)
        result[name] = {**figures, "val_accuracy": accuracy.history}
    return result


def within_band(values, low=0.5, high=2.0):
    """Every value within [low, high]× the values' geometric mean (False if any is 0)."""
    values = np.asarray(values)
    if np.any(values <= 0):
        return False
    centre = np.exp(np.mean(np.log(values)))
    return bool(np.all((values >= low * centre) & (values <= high * centre)))


def draw(runs, folder):
    layers = np.arange(1, DEPTH + 1)
    figure, axes = common.subplots(3)
    keys = ("activation_std", "gradient_std", "saturated")
    titles = ("std of tanh(z) per layer", "std of ∂L/∂z per layer", "share of |tanh(z)| > 0.99")
    for axis, key, title in zip(axes[0], keys, titles, strict=True):
        for index, name in enumerate(INITS):
            values = np.array([run[name][key] for run in runs], dtype=np.float64)
            if key != "saturated":
                values[values == 0] = np.nan  # zeros: 0 at every layer, off the log scale
            common.band(axis, layers, values, name, color=f"C{index}", marker="o", markersize=3)
        axis.set_yscale("linear" if key == "saturated" else "log")
        axis.set_xlabel("hidden layer")
        axis.set_title(title, fontsize="medium")
    axes[0][2].legend(fontsize="small", title="zeros: std 0 everywhere", title_fontsize="small")
    values = {name: {k: [run[name][k] for run in runs] for k in keys} for name in INITS}
    at_init = common.save_figure(figure, folder, "at_initialization", values)
    figure, axes = common.subplots(1)
    curves = {name: [run[name]["val_accuracy"] for run in runs] for name in INITS}
    for index, (name, values) in enumerate(curves.items()):
        common.band(axes[0][0], np.arange(1, len(values[0]) + 1), values, name, color=f"C{index}")
    axes[0][0].set(xlabel="epoch", ylabel="validation accuracy", title="SGD, momentum 0.9, α 0.01")
    axes[0][0].legend(fontsize="small")
    return [at_init, common.save_figure(figure, folder, "training", curves)]


def run(size, folder):
    runs = common.over_seeds(size, measure)
    rows = []
    for name in INITS:
        per_seed = [run[name] for run in runs]
        rows.append(
            {
                "init": name,
                "activation std, layer 1": [r["activation_std"][0] for r in per_seed],
                "activation std, layer 10": [r["activation_std"][-1] for r in per_seed],
                "gradient std, layer 1": [r["gradient_std"][0] for r in per_seed],
                "gradient std, layer 10": [r["gradient_std"][-1] for r in per_seed],
                "saturated, layers 2–10": [np.mean(r["saturated"][1:]) for r in per_seed],
                "final validation accuracy": [r["val_accuracy"][-1] for r in per_seed],
            }
        )
    by = {row["init"]: row for row in rows}
    zeros = all(max(r["zeros"]["activation_std"] + r["zeros"]["gradient_std"]) == 0 for r in runs)
    saturates = common.mean(by["N(0, 1)"]["saturated, layers 2–10"]) > 0.5
    shrink = [
        r["U[±1/√n]"]["activation_std"][-1] / r["U[±1/√n]"]["activation_std"][0] for r in runs
    ]
    glorot = all(
        within_band(r["Glorot"]["activation_std"]) and within_band(r["Glorot"]["gradient_std"])
        for r in runs
    )
    final = {name: common.mean(by[name]["final validation accuracy"]) for name in INITS}
    best = max(final, key=final.get)
    evidence = (
        f"Glorot within [½, 2]× the geometric mean for activations and gradients in every seed: "
        f"{glorot}; zeros 0 everywhere: {zeros}; N(0, 1) saturated share of layers 2–10 "
        f"{common.mean(by['N(0, 1)']['saturated, layers 2–10']):.2f} (> 0.5: {saturates}); "
        f"U[±1/√n] activation std layer 10 / layer 1 = {common.mean(shrink):.3f} (< 0.1: "
        f"{common.mean(shrink) < 0.1}); best final validation accuracy: {best}."
    )
    return common.Result(
        supported=glorot and zeros and saturates and common.mean(shrink) < 0.1 and best == "Glorot",
        evidence=evidence,
        columns=list(rows[0]),
        rows=rows,
        figures=draw(runs, folder),
        notes=f"{DEPTH} × {WIDTH} tanh units, inputs standardized, batch 100; the statistics "
        "are those of the untrained network on 1,000 training signals.",
    )
