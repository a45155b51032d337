"""E1: saturating non-linearities in a deep MLP (8 hidden layers of 64 units, Glorot's
initialization for all three, SGD with momentum).

The norm of each kernel's gradient ‖∂L/∂W_l‖ on 1,000 training signals, before and after
training, and the training loss per epoch.
"""

import numpy as np

from tfnn.experiments import common

ITEM = "E1"
TITLE = "saturating activations"
CLAIM = (
    "Through 8 layers the gradient reaching the first layer is orders of magnitude (> 100×) "
    "smaller than the last layer's with σ (σ′ ≤ ¼), not with tanh or ReLU (< 10×), and the σ "
    "network learns slowest (highest training loss after the same epochs)."
)
ACTIVATIONS = ("sigmoid", "tanh", "relu")


def gradient_norms(model, x, y):
    """‖∂L/∂W‖ of each Dense kernel, first to last."""
    # TensorFlow inside the measurement, never at the top: see tfnn.experiments.common.
    import tensorflow as tf

    from tfnn.layers import Dense

    kernels = [layer.kernel for layer in model.layers if isinstance(layer, Dense)]
    with tf.GradientTape() as tape:
        logits = model(x, training=False)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    return [float(tf.norm(g)) for g in tape.gradient(loss, kernels)]


def measure(seed, size, activation):
    import keras

    from tfnn.recipe.fit import build_model

    plan = common.plan_of(
        seed,
        train_examples=size.pick(1000, None),
        model="mlp",
        hidden_layers=(64,) * 8,
        activation=activation,
        init="glorot",
        dropout=0.0,
        optimizer="momentum",
        learning_rate=0.01,
        decay="none",
        label_smoothing=0.0,
        epochs=size.pick(2, 20),
    )
    x, y = plan.dataset.train[0][:1000], plan.dataset.train[1][:1000]
    keras.utils.set_random_seed(seed)
    before = gradient_norms(build_model(plan), x, y)
    model, history = common.train(plan)
    return {
        "before": before,
        "after": gradient_norms(model, x, y),
        "loss": history["loss"],
        "val_accuracy": common.evaluate(plan, model, "val")["accuracy"],
    }


def measure_all(seed, size):
    return {activation: measure(seed, size, activation) for activation in ACTIVATIONS}


def draw(runs, folder):
    figure, axes = common.subplots(3)
    values = {a: {k: [r[a][k] for r in runs] for k in ("before", "after", "loss")} for a in runs[0]}
    for index, activation in enumerate(ACTIVATIONS):
        style = {"color": f"C{index}", "marker": "o", "markersize": 3}
        layers = np.arange(1, len(values[activation]["before"][0]) + 1)
        common.band(axes[0][0], layers, values[activation]["before"], activation, **style)
        common.band(axes[0][1], layers, values[activation]["after"], activation, **style)
        epochs = np.arange(1, len(values[activation]["loss"][0]) + 1)
        common.band(axes[0][2], epochs, values[activation]["loss"], activation, color=f"C{index}")
    for axis, title in zip(axes[0][:2], ("at initialization", "after training"), strict=True):
        axis.set(yscale="log", xlabel="layer (9: output)", ylabel="‖∂L/∂W‖", title=title)
    axes[0][2].set(xlabel="epoch", ylabel="training loss", title="SGD, momentum 0.9, α 0.01")
    axes[0][2].legend(fontsize="small")
    return [common.save_figure(figure, folder, "gradient_norms", values)]


def run(size, folder):
    runs = common.over_seeds(size, measure_all)
    rows = []
    for activation in ACTIVATIONS:
        per_seed = [run[activation] for run in runs]
        rows.append(
            {
                "activation": activation,
                "‖∂L/∂W₁‖ / ‖∂L/∂W₉‖ at init": [r["before"][0] / r["before"][-1] for r in per_seed],
                "… after training": [r["after"][0] / r["after"][-1] for r in per_seed],
                "final training loss": [r["loss"][-1] for r in per_seed],
                "validation accuracy": [r["val_accuracy"] for r in per_seed],
            }
        )
    ratio = {row["activation"]: common.mean(row["‖∂L/∂W₁‖ / ‖∂L/∂W₉‖ at init"]) for row in rows}
    loss = {row["activation"]: common.mean(row["final training loss"]) for row in rows}
    vanishes = ratio["sigmoid"] < 1e-2 and min(ratio["tanh"], ratio["relu"]) > 1e-1
    slowest = loss["sigmoid"] > max(loss["tanh"], loss["relu"])
    evidence = (
        "first/last gradient-norm ratio at initialization: "
        + ", ".join(f"{a} {ratio[a]:.1e}" for a in ACTIVATIONS)
        + f" (σ < 1e-2 and the others > 1e-1: {vanishes}); final training loss "
        + ", ".join(f"{a} {loss[a]:.3f}" for a in ACTIVATIONS)
        + f" (σ highest: {slowest})."
    )
    return common.Result(
        supported=vanishes and slowest,
        evidence=evidence,
        columns=list(rows[0]),
        rows=rows,
        figures=draw(runs, folder),
        notes="Each activation gets the same initialization (Glorot), so only f differs; "
        "layer 9 is the output layer's kernel.",
    )
