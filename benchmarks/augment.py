"""Throughput of tfnn's augmentation pipelines, measured in one process.

1. Images: tfnn's pipeline (one `Affine` resampling for translation, rotation,
   zoom and flip, then `Contrast`) against the same transforms done by Keras's
   preprocessing layers (RandomTranslation, RandomFlip, RandomRotation,
   RandomZoom, RandomContrast) mapped over the same tf.data batches. Images per
   second over a full pass, interleaved repetitions, median. Goal ≥ 1.5×.
2. Signals: the MNIST-1D pipeline with every signal transform (shift, stretch,
   scale, noise, mixup), iterated as train.py feeds Model.fit (one iterator over
   all epochs), against the rate at which the default CNN of train.py consumes
   examples while training. Goal ≥ 10×: the pipeline is never the bottleneck.
   Also: the CNN's training speed with that pipeline relative to without it.

    python benchmarks/augment.py
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfnn import data, losses  # noqa: E402
from tfnn.data import augment  # noqa: E402
from tfnn.models.cnn import cnn  # noqa: E402
from tfnn.recipe.options import DEFAULT_CNN  # noqa: E402


def per_second(dataset, examples):
    """Examples per second of one full pass over `dataset`."""
    start = time.perf_counter()
    for _ in dataset:  # eager iteration hands over finished batches
        pass
    return examples / (time.perf_counter() - start)


def images(args):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.images, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 10, size=args.images)
    base = data.batches(x, y, args.batch_size)
    ours = augment.augment(
        base,
        [augment.Affine(translate=0.1, rotate=15, zoom=0.1, flip=True), augment.Contrast(0.2)],
        seed=0,
    )
    layers = keras.Sequential(
        [
            keras.layers.RandomTranslation(0.1, 0.1, seed=1),
            keras.layers.RandomFlip("horizontal", seed=2),
            keras.layers.RandomRotation(15 / 360, seed=3),
            keras.layers.RandomZoom(0.1, seed=4),
            keras.layers.RandomContrast(0.2, seed=5),
        ]
    )
    theirs = base.map(
        lambda x, y: (layers(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
    ).prefetch(tf.data.AUTOTUNE)
    for dataset in (ours, theirs):  # warm up: trace the maps
        per_second(dataset.take(2), 2 * args.batch_size)
    ours_rates, theirs_rates = [], []
    for rep in range(args.repetitions):
        pair = [(ours, ours_rates), (theirs, theirs_rates)]
        for dataset, rates in pair if rep % 2 == 0 else reversed(pair):
            rates.append(per_second(dataset, args.images))
    ratios = [o / t for o, t in zip(ours_rates, theirs_rates, strict=True)]
    print(
        f"| images {args.size}×{args.size}×3, batch {args.batch_size} "
        f"| {statistics.median(ours_rates):,.0f} | {statistics.median(theirs_rates):,.0f} "
        f"| {statistics.median(ratios):.2f} |"
    )


def signals(args):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3600, 40)).astype("float32")  # the MNIST-1D training split's size
    y = rng.integers(0, 10, size=3600)
    gold = np.eye(10, dtype="float32")[y]
    transforms = [
        augment.SignalShift(4),
        augment.TimeStretch(0.1),
        augment.AmplitudeScale(0.2),
        augment.Noise(0.1),
        augment.MixUp(0.2, 10),
    ]

    def pipeline(repeat=False):
        batches = data.batches(x, gold, 100, shuffle_seed=0, repeat=repeat)
        return augment.augment(batches, transforms, seed=0)

    # As train.py feeds Model.fit: one endless stream of epochs, so tf.data builds
    # the pipeline once; `epochs` epochs of 36 batches, that start-up included.
    # For contrast, a new iterator per epoch pays the start-up every epoch.
    epochs, steps = 10, 36
    per_second(pipeline().take(2), 200)
    pipeline_rate = statistics.median(
        per_second(pipeline(repeat=True).take(epochs * steps), epochs * len(y))
        for _ in range(args.repetitions)
    )
    per_epoch_rate = statistics.median(
        per_second(pipeline(), len(y)) for _ in range(args.repetitions)
    )
    startup, plain_startup = (
        statistics.median(first_batch_ms(make()) for _ in range(args.repetitions))
        for make in (pipeline, lambda: data.batches(x, gold, 100, shuffle_seed=0))
    )

    keras.utils.set_random_seed(0)
    model = cnn(x, 10, DEFAULT_CNN)
    # train.py's steps per call for 36-step epochs: 9, the largest divisor up to 10.
    fit_epochs = 5
    model.compile(keras.optimizers.Adam(3e-3), losses.SoftmaxNLL(0.1), steps_per_execution=9)
    plain = data.batches(x, gold, 100, shuffle_seed=0, repeat=True)
    augmented = pipeline(repeat=True)

    def training_rate(batches):
        start = time.perf_counter()
        # Exactly `fit_epochs` epochs of the stream: no iterator is left prefetching
        # into the next measurement.
        model.fit(
            batches.take(fit_epochs * steps), steps_per_epoch=steps, epochs=fit_epochs, verbose=0
        )
        return fit_epochs * len(y) / (time.perf_counter() - start)

    training_rate(plain)  # trace
    plain_rates, augmented_rates = [], []
    for _ in range(args.repetitions):
        plain_rates.append(training_rate(plain))
        augmented_rates.append(training_rate(augmented))
    plain_training = statistics.median(plain_rates)
    ratio = statistics.median(a / p for a, p in zip(augmented_rates, plain_rates, strict=True))
    print(
        f"| MNIST-1D signals, batch 100 | {pipeline_rate:,.0f} "
        f"| {plain_training:,.0f} (training) | {pipeline_rate / plain_training:.1f} |"
    )
    print(
        f"| MNIST-1D signals, a new iterator every epoch | {per_epoch_rate:,.0f} "
        f"| {plain_training:,.0f} (training) | {per_epoch_rate / plain_training:.1f} |"
    )
    print(
        f"\nSignals: training the default CNN with every signal transform runs at {ratio:.2f}× "
        f"its speed without augmentation ({plain_training:,.0f} examples/s). Creating an "
        f"iterator takes {startup:.0f} ms to the first batch with augmentation, "
        f"{plain_startup:.0f} ms without."
    )


def first_batch_ms(dataset):
    start = time.perf_counter()
    next(iter(dataset))
    return 1e3 * (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=1, help="TensorFlow's op threads, as train.py's --threads"
    )
    args = parser.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")
    print("| pipeline | tfnn (examples/s) | baseline (examples/s) | ratio |")
    print("|---|---:|---:|---:|")
    images(args)
    signals(args)


if __name__ == "__main__":
    main()
