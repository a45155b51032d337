"""Writes tfnn's copies of scikit-learn's bundled data sets, which tfnn reads instead of
importing scikit-learn (1.5 s of start-up):

    python tools/embedded_data.py [--folder DIR]     (default: tfnn/data/embedded_arrays)

One compressed .npz per set (`tfnn.data.embedded.SKLEARN_SETS`), holding the arrays x and y
exactly as scikit-learn's load_* returns them: digits' 8×8 `images` and `target`, the
other sets' `return_X_y=True` pair. Entries are written with a fixed timestamp, so the same
scikit-learn writes the same bytes. The sets' sources and licences:
tfnn/data/embedded_arrays/README.md.
"""

import argparse
import pathlib
import zipfile

import numpy as np
from sklearn import datasets

from tfnn.data.embedded import ARRAYS, SKLEARN_SETS


def sklearn_arrays(name):
    """(x, y) of one of `SKLEARN_SETS` as scikit-learn's load_* returns them."""
    if name == "digits":
        digits = datasets.load_digits()
        return digits.images, digits.target
    return getattr(datasets, f"load_{name}")(return_X_y=True)


def write(folder):
    """Writes <folder>/<name>.npz for each of `SKLEARN_SETS`; returns the paths."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SKLEARN_SETS:
        path = folder / f"{name}.npz"
        with zipfile.ZipFile(path, "w") as archive:
            for key, array in zip(("x", "y"), sklearn_arrays(name), strict=True):
                # np.savez stamps entries with the current time; a fixed one keeps the bytes.
                entry = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                entry.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(entry, "w") as file:
                    np.lib.format.write_array(file, np.asarray(array), allow_pickle=False)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description="Writes tfnn's copies of scikit-learn's sets.")
    parser.add_argument("--folder", default=str(ARRAYS), help="where the .npz files go")
    for path in write(parser.parse_args(argv).folder):
        print(path)


if __name__ == "__main__":
    main()
