"""E3: gradient clipping in a setup whose gradients explode: 8 ReLU layers of 64 units (He's
initialization), plain SGD at α = 2.

Each step's global gradient norm before clipping and each epoch's clip rate come from
`tfnn.clipping.ClipGradients` through `tfnn.callbacks.ClipTelemetry`. "none" is the same
wrapper at c = 10³⁰, which measures the norm and never clips.
"""

import math

import numpy as np

from tfnn.experiments import common

ITEM = "E3"
TITLE = "gradient clipping"
CLAIM = (
    "Where unclipped SGD's loss explodes (becomes non-finite or exceeds 10³), clipping the "
    "gradient at c = 0.25 — per weight, per matrix or globally — keeps the loss bounded, and "
    "global-norm clipping, which keeps the gradient's direction, reaches the best validation "
    "accuracy of the four."
)
MODES = {"none": ("global_norm", 1e30), "value": ("value", 0.25)}
MODES.update(norm=("norm", 0.25), global_norm=("global_norm", 0.25))
EXPLODED = 1e3  # a training loss above this (ln 10 ≈ 2.3 at the start) has exploded


def measure(seed, size, mode):
    # TensorFlow inside the measurement, never at the top: see tfnn.experiments.common.
    import keras

    from tfnn.callbacks import ClipTelemetry

    clip_mode, clip = MODES[mode]
    plan = common.plan_of(
        seed,
        train_examples=size.pick(1000, None),
        model="mlp",
        hidden_layers=(64,) * 8,
        activation="relu",
        init="he",
        dropout=0.0,
        optimizer="sgd",
        learning_rate=2.0,
        decay="none",
        label_smoothing=0.0,
        clip_mode=clip_mode,
        clip=clip,
        epochs=size.pick(3, 10),
        steps_per_execution=1,  # the norm of every step
    )
    norms = []
    step = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: norms.append(logs["grad_norm"])
    )
    stop = keras.callbacks.TerminateOnNaN()
    model, history = common.train(plan, callbacks=[ClipTelemetry(), step, stop])
    losses = history["loss"]
    finite = all(map(math.isfinite, losses))
    return {
        "finite": finite,
        "exploded": not finite or max(losses) > EXPLODED,
        "norms": norms,
        "clip_rate": history["clip_rate"],
        "loss": losses[-1] if finite else None,
        "val_accuracy": common.evaluate(plan, model, "val")["accuracy"] if finite else None,
    }


def measure_all(seed, size):
    return {mode: measure(seed, size, mode) for mode in MODES}


def draw(runs, folder):
    figure, axes = common.subplots(2)
    values = {m: {k: [r[m][k] for r in runs] for k in ("norms", "clip_rate")} for m in MODES}
    for index, mode in enumerate(MODES):
        for number, norms in enumerate(values[mode]["norms"]):
            norms = np.asarray(norms, dtype=np.float64)
            label = mode if number == 0 else None
            axes[0][0].plot(np.arange(1, len(norms) + 1), norms, color=f"C{index}", label=label)
        if mode != "none":
            rates = values[mode]["clip_rate"]
            common.band(axes[0][1], np.arange(1, len(rates[0]) + 1), rates, mode, color=f"C{index}")
    axes[0][0].set(yscale="log", xlabel="step", ylabel="‖g‖ before clipping")
    axes[0][0].set_title("global gradient norm (each seed)", fontsize="medium")
    axes[0][1].set(xlabel="epoch", ylabel="share of steps clipped", ylim=(-0.05, 1.05))
    axes[0][1].set_title("clip rate", fontsize="medium")
    axes[0][0].legend(fontsize="small")
    return [common.save_figure(figure, folder, "clipping", values)]


def run(size, folder):
    runs = common.over_seeds(size, measure_all)
    rows = []
    for mode in MODES:
        per_seed = [run[mode] for run in runs]
        largest = [float(np.max(r["norms"])) for r in per_seed]
        rows.append(
            {
                "clipping": f"{mode} (c = {MODES[mode][1]:g})" if mode != "none" else "none",
                "exploded (share of seeds)": common.mean([r["exploded"] for r in per_seed]),
                "largest ‖g‖": [n if math.isfinite(n) else None for n in largest],
                "clip rate": None
                if mode == "none"
                else [np.mean(r["clip_rate"]) for r in per_seed],
                "final training loss": [r["loss"] for r in per_seed],
                "validation accuracy": [r["val_accuracy"] for r in per_seed],
            }
        )
    exploded = {mode: common.mean([run[mode]["exploded"] for run in runs]) for mode in MODES}
    accuracy = {
        mode: common.mean([run[mode]["val_accuracy"] or 0.0 for run in runs]) for mode in MODES
    }
    explodes = exploded["none"] == 1.0
    bounded = all(exploded[mode] == 0.0 for mode in MODES if mode != "none")
    best = max(accuracy, key=accuracy.get)
    evidence = (
        f"without clipping the loss exploded in {exploded['none']:.0%} of the seeds (all: "
        f"{explodes}); with clipping it exploded in "
        + ", ".join(f"{m} {exploded[m]:.0%}" for m in MODES if m != "none")
        + f" (none of them: {bounded}); validation accuracy (non-finite runs counted as 0): "
        + ", ".join(f"{m} {accuracy[m]:.3f}" for m in MODES)
        + f"; best: {best}."
    )
    return common.Result(
        supported=explodes and bounded and best == "global_norm",
        evidence=evidence,
        columns=list(rows[0]),
        rows=rows,
        figures=draw(runs, folder),
        notes="Exploded: an epoch's training loss non-finite (Keras's TerminateOnNaN then stops "
        f"the run; its figures show as –) or above {EXPLODED:g}. Value clipping caps each "
        "weight's step at α·c, not the step's norm.",
    )
