"""Throughput of the streamed input pipeline against the default CNN's consumption.

1. MNIST-1D streamed from TFDS's files (`tfnn.data.stream_batches`: read,
   shuffle by file and in a buffer, batch, convert to float32), iterated as
   train.py feeds Model.fit (one endless stream), against the rate at which
   the default CNN of train.py consumes examples while training; with train.py's tf.data
   options for its training pipeline (no autotuning), and autotuned for comparison.
2. A folder of 32×32 RGB PNGs (`PATH/<split>/<class>/<image>`, read through
   TFDS's ImageFolder, decoded per example), streamed the same way.

Goal ≥ 10×: the pipeline is never the bottleneck.

    python benchmarks/data.py
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from PIL import Image  # noqa: E402

from tfnn import data, losses  # noqa: E402
from tfnn.models.cnn import cnn  # noqa: E402
from tfnn.recipe.fit import TRAINING_PIPELINE  # noqa: E402
from tfnn.recipe.options import DEFAULT_CNN  # noqa: E402


def per_second(dataset, examples):
    start = time.perf_counter()
    for _ in dataset:
        pass
    return examples / (time.perf_counter() - start)


def stream_rate(split, batch, epochs, repetitions, options=TRAINING_PIPELINE):
    """Examples per second of the streamed split, with train.py's tf.data options (no
    autotuning) or `options`."""
    steps = -(-len(split) // batch)
    batches = data.stream_batches(split, batch, shuffle_seed=0, repeat=True)
    batches = batches.with_options(options)
    per_second(batches.take(2), 2 * batch)
    return statistics.median(
        per_second(batches.take(epochs * steps), epochs * len(split)) for _ in range(repetitions)
    )


def cnn_rate(x, y, repetitions):
    """Examples per second the default CNN trains on (in-memory batches, as train.py)."""
    gold = np.eye(10, dtype="float32")[y]
    keras.utils.set_random_seed(0)
    model = cnn(x, 10, DEFAULT_CNN)
    model.compile(keras.optimizers.Adam(3e-3), losses.SoftmaxNLL(0.1), steps_per_execution=9)
    steps, epochs = 36, 3
    batches = data.batches(x, gold, 100, shuffle_seed=0, repeat=True)

    def rate():
        start = time.perf_counter()
        model.fit(batches.take(epochs * steps), steps_per_epoch=steps, epochs=epochs, verbose=0)
        return epochs * steps * 100 / (time.perf_counter() - start)

    rate()  # trace
    return statistics.median(rate() for _ in range(repetitions))


def png_folder(root, per_class, classes=10, size=32):
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", per_class // 5)):
        for k in range(classes):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels, "RGB").save(folder / f"{i}.png")


def main(argv=None):
    import pathlib

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--per_class", type=int, default=400, help="PNGs per class (train)")
    parser.add_argument("--threads", type=int, default=1, help="as train.py's --threads")
    args = parser.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tfds.display_progress_bar(False)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        memory = data.load("mnist1d", seed=0, data_dir=tmp)
        streamed = data.load("mnist1d", seed=0, data_dir=tmp, in_memory_bytes=0)
        consumption = cnn_rate(*memory.train, args.repetitions)
        signals = stream_rate(streamed.train, 100, 10, args.repetitions)
        autotuned = stream_rate(streamed.train, 100, 10, args.repetitions, tf.data.Options())
        root = pathlib.Path(tmp) / "pngs"
        png_folder(root, args.per_class)
        folder = data.load(str(root), seed=0, in_memory_bytes=0)
        images = stream_rate(folder.train, 100, 2, args.repetitions)
        rng = np.random.default_rng(0)
        image_consumption = cnn_rate(
            rng.random((3600, 32, 32, 3), np.float32), rng.integers(0, 10, 3600), args.repetitions
        )
    print("| pipeline | streamed (examples/s) | default CNN training (examples/s) | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| MNIST-1D from TFDS files, batch 100 | {signals:,.0f} | {consumption:,.0f} "
        f"| {signals / consumption:.1f} |"
    )
    print(
        f"| the same, tf.data autotuning on | {autotuned:,.0f} | {consumption:,.0f} "
        f"| {autotuned / consumption:.1f} |"
    )
    print(
        f"| 32×32 RGB PNG folder, batch 100 | {images:,.0f} | {image_consumption:,.0f} "
        f"| {images / image_consumption:.1f} |"
    )


if __name__ == "__main__":
    main()
