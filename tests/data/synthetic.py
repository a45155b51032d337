"""A generated on-disk TFDS data set for the memory test, and the subprocess it runs in.

    python tests/data/synthetic.py generate DATA_DIR SCALE   writes 2,000·SCALE train examples
    python tests/data/synthetic.py run DATA_DIR SCALE        one epoch; prints peak RSS in KiB

Each example has FEATURES float32 features (8 KB); the label is the sign of the sum of
the first ten, so a run can learn it.
"""

import pathlib
import resource
import sys

import numpy as np
import tensorflow_datasets as tfds

FEATURES = 2000
TRAIN = 2000


class StreamedSynthetic(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")
    pkg_dir_path = pathlib.Path(__file__).parent  # TFDS would look for metadata next to it
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=f"x{s}") for s in (1, 10)]

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "features": tfds.features.Tensor(shape=(FEATURES,), dtype=np.float32),
                    "label": tfds.features.ClassLabel(num_classes=2),
                }
            ),
            supervised_keys=("features", "label"),
        )

    def _split_generators(self, dl_manager):
        n = TRAIN * int(self.builder_config.name[1:])
        return {"train": self._generate_examples(n, 0), "test": self._generate_examples(n // 10, 1)}

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        for i in range(n):
            x = rng.normal(size=FEATURES).astype(np.float32)
            yield i, {"features": x, "label": int(x[:10].sum() > 0)}


def main(action, data_dir, scale):
    name = f"streamed_synthetic/x{scale}"
    if action == "generate":
        tfds.display_progress_bar(False)
        tfds.builder(name, data_dir=data_dir).download_and_prepare()
        return
    import tfnn
    from tfnn.data import loading

    loading.IN_MEMORY_BYTES = 0  # both scales on the streamed path
    tfnn.train(
        dataset=name,
        model="mlp",
        hidden_layers=(32,),
        epochs=1,
        batch_size=100,
        verbose=0,
        data_dir=data_dir,
        logdir=f"{data_dir}/logs{scale}",
        export_dir=f"{data_dir}/saved{scale}",
    )
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
