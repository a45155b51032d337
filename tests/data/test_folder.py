"""A user's own images: a folder PATH/<split>/<class>/<image> read through TFDS's ImageFolder."""

import numpy as np
import pytest
from PIL import Image

from tfnn import data

CLASSES = ("cat", "dog", "eel")


def write_folder(root, per_class=(6, 2), size=(12, 10), mode="RGB", seed=0):
    """Images whose bright band of rows (top, middle, bottom third) is the class."""
    rng = np.random.default_rng(seed)
    height, width = size
    channels = 3 if mode == "RGB" else 1
    for split, n in zip(("train", "test"), per_class, strict=True):
        for k, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 30, (height, width, channels))
                band = slice(k * height // 3, (k + 1) * height // 3)
                pixels[band] = rng.integers(200, 255, pixels[band].shape)
                image = Image.fromarray(pixels.astype(np.uint8).squeeze(), mode)
                image.save(root / split / name / f"{i}.png")
    return root


def test_an_image_folder_loads_with_its_classes_shape_and_sizes(tmp_path):
    root = write_folder(tmp_path / "pets")
    ds = data.load(str(root), seed=0, validation_fraction=0.25)
    assert ds.task == data.Task(data.CLASSES, 3)
    assert ds.input_shape == (12, 10, 3)
    assert len(ds.train[1]) + len(ds.validation[1]) == 18
    assert len(ds.test[1]) == 6
    x, y = ds.train
    assert x.dtype == np.float32 and 0.0 <= x.min() <= x.max() <= 1.0
    # Labels follow the class folders (sorted names): the bright third is the class.
    bands = x.reshape(len(x), 3, 4, -1).mean(axis=(2, 3))
    np.testing.assert_array_equal(bands.argmax(axis=1), y)


def test_grey_images_have_one_channel(tmp_path):
    root = write_folder(tmp_path / "grey", mode="L", size=(8, 8))
    assert data.load(str(root), seed=0).input_shape == (8, 8, 1)


def test_missing_split_is_refused_in_one_line(tmp_path):
    root = write_folder(tmp_path / "pets")
    for path in (root / "test").glob("*/*"):
        path.unlink()
    for path in (root / "test").glob("*"):
        path.rmdir()
    (root / "test").rmdir()
    with pytest.raises(ValueError, match="missing the 'test' folder") as error:
        data.load(str(root), seed=0)
    assert "\n" not in str(error.value)


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "test").mkdir()
    with pytest.raises(ValueError, match="no .png/.jpg images"):
        data.load(str(tmp_path / "empty"), seed=0)
    with pytest.raises(ValueError, match="no such folder"):
        data.load(str(tmp_path / "absent"), seed=0)


def test_mixed_sizes_are_refused_naming_both_files(tmp_path):
    root = write_folder(tmp_path / "pets")
    Image.new("RGB", (11, 12)).save(root / "test" / "dog" / "odd.png")
    with pytest.raises(ValueError, match=r"mixed image sizes") as error:
        data.load(str(root), seed=0)
    assert "odd.png" in str(error.value) and "(12, 11, 3)" in str(error.value)


def test_an_unreadable_image_is_named(tmp_path):
    root = write_folder(tmp_path / "pets")
    (root / "train" / "eel" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"unreadable image .*broken\.png"):
        data.load(str(root), seed=0)


def test_a_training_run_on_an_image_folder(tmp_path, small_run):
    """`tfnn.train(dataset=PATH)`: classes and shape from the folder, in memory and streamed."""
    root = write_folder(tmp_path / "pets", per_class=(12, 4))
    for limit in (data.IN_MEMORY_BYTES, 0):
        metrics = small_run(root, limit, epochs=8, batch_size=8)
        # A bright band in one third of the rows: the test images are told apart.
        assert metrics["test"]["accuracy"] > 0.9, metrics
