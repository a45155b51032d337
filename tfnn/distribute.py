"""Training on more than one device or machine, through tf.distribute.

    default        one device: TensorFlow's default strategy
    mirrored       MirroredStrategy: one replica per local GPU, or per logical
                   CPU device when there is no GPU (for testing)
    multi_worker   MultiWorkerMirroredStrategy over the machines that the
                   TF_CONFIG environment variable lists

Every replica holds a copy of the weights. A step splits the global batch
across the R replicas (per-replica batch B/R), each computes the gradient of
its share of the batch loss, the shares are summed by all-reduce and every
replica applies the same update, so the weights stay identical. With the
loss a mean over the global batch, L = (1/B) Σ_i ℓ_i, the summed gradient is
the one a single device computes on the whole batch.

Keras 3.15's `Model.fit` runs under `mirrored`; under `multi_worker` it fails
(keras-team/keras#20585), so `fit_multi_worker` is a plain custom loop:
`strategy.run` of a replica step, global-batch averaging, `strategy.reduce`.
"""

import csv as _csv
import io as _io
import os as _os

import tensorflow as _tf

from tfnn import files

__all__ = ["evaluate", "fit_multi_worker", "is_chief", "make_strategy"]


def make_strategy(name):
    """The tf.distribute strategy called `name` (see the module docstring)."""
    if name == "default":
        return _tf.distribute.get_strategy()
    if name == "mirrored":
        if _tf.config.list_logical_devices("GPU"):
            return _tf.distribute.MirroredStrategy()
        cpus = [device.name for device in _tf.config.list_logical_devices("CPU")]
        return _tf.distribute.MirroredStrategy(devices=cpus)
    if name == "multi_worker":
        if "TF_CONFIG" not in _os.environ:
            raise ValueError("Expected the TF_CONFIG environment variable for multi_worker")
        return _tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(
        f"Expected a strategy in ('default', 'mirrored', 'multi_worker'). Received: {name!r}"
    )


def is_chief(strategy):
    """Whether this process writes the run's results: the chief, or worker 0 without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def fit_multi_worker(
    model,
    strategy,
    loss,
    make_metrics,
    train,
    validation,
    *,
    epochs,
    steps_per_epoch,
    history_path=None,
    log=None,
):
    """Model.fit's core under MultiWorkerMirroredStrategy; returns the history.

    `model` is compiled inside `strategy.scope()` (under mixed_float16 its
    optimizer is Keras's LossScaleOptimizer); `loss` is a Keras loss and
    `make_metrics()` returns fresh metric objects. `train` is an endless
    stream of global batches; an epoch takes `steps_per_epoch` of them. A
    step's loss is the mean of the per-example losses over the whole global
    batch (plus the weight penalties), so every worker applies the step one
    device would. Training metrics cover this worker's share of the batches;
    after each epoch every worker evaluates the loss and the metrics on all of
    `validation`. `history_path` gets Keras's CSVLogger layout; `log` one line
    per epoch.
    """
    per_example = _per_example(loss)
    optimizer = model.optimizer
    options = _tf.data.Options()
    options.experimental_distribute.auto_shard_policy = _tf.data.experimental.AutoShardPolicy.DATA
    iterator = iter(strategy.experimental_distribute_dataset(train.with_options(options)))

    def replica_step(x, y):
        context = _tf.distribute.get_replica_context()
        with _tf.GradientTape() as tape:
            logits = model(x, training=True)
            losses = _tf.cast(per_example(y, logits), _tf.float32)
            # The mean over the global batch: sum here, divide by the examples of all replicas.
            count = context.all_reduce(
                _tf.distribute.ReduceOp.SUM, _tf.cast(_tf.size(losses), _tf.float32)
            )
            loss = _tf.reduce_sum(losses) / count
            if model.losses:
                penalty = _tf.add_n([_tf.cast(p, _tf.float32) for p in model.losses])
                loss += penalty / context.num_replicas_in_sync
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss, y, logits

    @_tf.function
    def train_step(iterator):
        loss, y, logits = strategy.run(replica_step, args=next(iterator))
        local = strategy.experimental_local_results
        return (
            strategy.reduce(_tf.distribute.ReduceOp.SUM, loss, axis=None),
            local(y),
            local(logits),
        )

    history = {"loss": []}
    for epoch in range(epochs):
        total, metrics = 0.0, make_metrics()
        for _ in range(steps_per_epoch):
            step_loss, ys, logits = train_step(iterator)
            total += float(step_loss)
            for metric in metrics:  # training metrics: this worker's share of the batches
                for y, z in zip(ys, logits, strict=True):
                    metric.update_state(y, z)
        logs = {"loss": total / steps_per_epoch}
        logs.update({metric.name: float(metric.result()) for metric in metrics})
        logs.update(
            {f"val_{k}": v for k, v in evaluate(model, validation, loss, make_metrics()).items()}
        )
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if log:
            log(
                f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in logs.items())
            )
        if history_path is not None:
            _write_history(history_path, history)
    return history


def _per_example(loss):
    """A copy of the Keras loss `loss` that returns one value per example."""
    return loss.__class__.from_config({**loss.get_config(), "reduction": None})


def evaluate(model, dataset, loss, metrics):
    """{"loss": …, <metric>: …} of `model` on `dataset`, computed in this process."""
    per_example = _per_example(loss)
    total, count = 0.0, 0
    for x, y in dataset:
        logits = model(x, training=False)
        losses = per_example(y, logits)
        total += float(_tf.reduce_sum(_tf.cast(losses, _tf.float32)))
        count += int(_tf.size(losses))
        for metric in metrics:
            metric.update_state(y, logits)
    return {"loss": total / max(count, 1), **{m.name: float(m.result()) for m in metrics}}


def _write_history(path, history):
    """`history` in Keras's CSVLogger layout, replacing the file whole (tfnn.files)."""
    keys = sorted(history)
    text = _io.StringIO()
    writer = _csv.writer(text)
    writer.writerow(["epoch", *keys])
    for epoch in range(len(history["loss"])):
        writer.writerow([epoch + 1, *(history[key][epoch] for key in keys)])
    files.write_atomically(path, text.getvalue())
