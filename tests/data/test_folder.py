"""A user's own images: a folder PATH/<split>/<class>/<image> read through TFDS's ImageFolder."""

import io
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image
from tensorflow_datasets.core.folder_dataset import image_folder

from tfnn import data
from tfnn.data import folder


def test_an_image_folder_loads_with_its_classes_shape_and_sizes(tmp_path, write_folder):
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


def test_grey_images_have_one_channel(tmp_path, write_folder):
    root = write_folder(tmp_path / "grey", mode="L", size=(8, 8))
    assert data.load(str(root), seed=0).input_shape == (8, 8, 1)


def test_missing_split_is_refused_in_one_line(tmp_path, write_folder):
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


def test_mixed_sizes_are_refused_naming_both_files(tmp_path, write_folder):
    root = write_folder(tmp_path / "pets")
    Image.new("RGB", (11, 12)).save(root / "test" / "dog" / "odd.png")
    with pytest.raises(ValueError, match=r"mixed image sizes") as error:
        data.load(str(root), seed=0)
    assert "odd.png" in str(error.value) and "(12, 11, 3)" in str(error.value)


def test_an_unreadable_image_is_named(tmp_path, write_folder):
    root = write_folder(tmp_path / "pets")
    (root / "train" / "eel" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"unreadable image .*broken\.png"):
        data.load(str(root), seed=0)


def _garbage_pixels_png(path, size=(10, 12)):
    """A PNG whose header and chunk checksums are valid, its pixel stream (IDAT) garbage."""
    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, format="PNG")
    whole, rebuilt, at = buffer.getvalue(), buffer.getvalue()[:8], 8
    while at < len(whole):
        (length,) = struct.unpack(">I", whole[at : at + 4])
        kind, body = whole[at + 4 : at + 8], whole[at + 8 : at + 8 + length]
        if kind == b"IDAT":
            body = b"\xab" * len(body)  # not a zlib stream
        crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        rebuilt += struct.pack(">I", len(body)) + kind + body + crc
        at += 12 + length
    path.write_bytes(rebuilt)


def test_an_image_whose_pixels_do_not_decode_is_refused_before_the_run(tmp_path, write_folder):
    """Catches the check reading headers and checksums only (`image.verify()`): this PNG passed
    it and TensorFlow's decode then failed in the middle of the run with a traceback."""
    root = write_folder(tmp_path / "pets", size=(12, 10))
    garbage = root / "train" / "eel" / "garbage.png"
    _garbage_pixels_png(garbage)
    with Image.open(garbage) as image:
        image.verify()  # what the check did: it passes
    with pytest.raises(ValueError) as error:
        data.load(str(root), seed=0)
    message = str(error.value)
    assert message.startswith(
        f"Expected readable PNG or JPEG images. Received: unreadable image {str(garbage)!r} ("
    )
    assert "\n" not in message


@pytest.mark.parametrize("where", ["image", "class folder"])
def test_a_name_that_is_not_utf8_is_refused_naming_the_folder_and_the_name(
    tmp_path, write_folder, where
):
    """Catches the names passed on unchecked: TFDS's listing then failed with "'utf-8' codec
    can't decode byte 0xff", naming neither the file nor --dataset."""
    root = write_folder(tmp_path / "pets")
    name = b"\xff\xfe.png" if where == "image" else b"\xff\xfe"
    parent = root / "train" / ("cat" if where == "image" else "")
    bad = parent / os.fsdecode(name)  # the bytes kept as surrogates, as os.listdir gives them
    if where == "image":
        shutil.copy(parent / "0.png", bad)
    else:
        shutil.copytree(parent / "cat", bad)
    with pytest.raises(ValueError) as error:
        data.load(str(root), seed=0)
    what = f"a name that is not UTF-8 in {str(parent)!r}: {name!r}"
    assert str(error.value) == refused(root, what)


def test_a_training_run_on_an_image_folder(tmp_path, small_run, write_folder):
    """`tfnn.train(dataset=PATH)`: classes and shape from the folder, in memory and streamed."""
    root = write_folder(tmp_path / "pets", per_class=(12, 4))
    for limit in (data.IN_MEMORY_BYTES, 0):
        metrics = small_run(root, limit, epochs=8, batch_size=8)
        # A bright band in one third of the rows: the test images are told apart.
        assert metrics["test"]["accuracy"] > 0.9, metrics


def test_the_export_of_an_image_folder_run_takes_pixel_values_over_255(tmp_path, small_run):
    """The SavedModel takes what training read: a PNG's 0–255 pixel values divided by 255
    (docs/serving.md). Catches the documented input scale parting from the pipeline's
    (`pipeline.converted`'s x / 255): the test images' classes must come back."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    root = tmp_path / "shades"  # the class is the grey level: dark, middle, light
    for split, n in (("train", 16), ("test", 4)):
        for k, name in enumerate(("dark", "middle", "light")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                grey = rng.normal(30 + 95 * k, 8, (4, 4)).clip(0, 255).astype(np.uint8)
                Image.fromarray(grey, "L").save(root / split / name / f"{i}.png")
    metrics = small_run(root, data.IN_MEMORY_BYTES, epochs=30, batch_size=4, dropout=0.0)
    classes = sorted(p.name for p in (root / "test").iterdir())
    files = sorted((root / "test").glob("*/*.png"))
    pixels = np.stack([np.asarray(Image.open(path), np.float32)[..., None] for path in files])
    labels = np.array([classes.index(path.parent.name) for path in files])
    served = tf.saved_model.load(metrics["export_path"]).signatures["classes"]
    predicted = served(inputs=tf.constant(pixels / 255.0))["classes"].numpy()
    assert np.mean(predicted == labels) == pytest.approx(metrics["test"]["accuracy"])
    assert metrics["test"]["accuracy"] > 0.9


def bands_match_labels(split):
    """Whether every example's bright third is its label: labels follow the class names."""
    x, y = split
    bands = x.reshape(len(x), 3, 4, -1).mean(axis=(2, 3))
    return bool((bands.argmax(axis=1) == y).all())


def test_hidden_entries_are_ignored_and_labels_follow_the_train_classes(tmp_path, write_folder):
    root = write_folder(tmp_path / "pets")
    # '.' sorts before the class names: seen as a class it would shift every label by one.
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "test" / ".ipynb_checkpoints" / "cat").mkdir(parents=True)
    Image.new("RGB", (10, 12)).save(root / "test" / ".ipynb_checkpoints" / "cat" / "0.png")
    (root / ".ipynb_checkpoints" / "cat").mkdir(parents=True)  # a hidden split
    Image.new("RGB", (10, 12)).save(root / ".ipynb_checkpoints" / "cat" / "0.png")
    Image.new("RGB", (3, 3)).save(root / "train" / "dog" / ".hidden.png")  # another size
    builder = folder.builder(str(root))
    assert builder.info.features["label"].names == ["cat", "dog", "eel"]
    assert set(builder.info.splits) == {"train", "test"}
    ds = data.load(str(root), seed=0, validation_fraction=0.25)
    assert ds.task == data.Task(data.CLASSES, 3)
    assert len(ds.train[1]) + len(ds.validation[1]) == 18 and len(ds.test[1]) == 6
    assert bands_match_labels(ds.train) and bands_match_labels(ds.test)


def test_a_train_class_missing_from_test_is_a_warning_and_keeps_the_labels(tmp_path, write_folder):
    root = write_folder(tmp_path / "pets")
    shutil.rmtree(root / "test" / "cat")  # the first class: TFDS alone would shift the labels
    with pytest.warns(UserWarning, match=r"'cat'.* no test images"):
        ds = data.load(str(root), seed=0)
    assert ds.task == data.Task(data.CLASSES, 3) and len(ds.test[1]) == 4
    assert bands_match_labels(ds.test) and set(ds.test[1]) == {1, 2}


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_class_folder_is_refused_naming_it(tmp_path, split, write_folder):
    root = write_folder(tmp_path / "pets")
    (root / split / "fox").mkdir()
    (root / split / "fox" / "notes.txt").write_text("no image")
    with pytest.raises(ValueError, match=rf"class folder '.*{split}/fox' holds no") as error:
        data.load(str(root), seed=0)
    assert "\n" not in str(error.value)


def test_one_class_is_refused_two_are_a_binary_task(tmp_path, write_folder):
    root = write_folder(tmp_path / "pets")
    for split in ("train", "test"):
        shutil.rmtree(root / split / "eel")
    assert data.load(str(root), seed=0).task == data.Task(data.BINARY, 2)
    for split in ("train", "test"):
        shutil.rmtree(root / split / "dog")
    with pytest.raises(ValueError, match=r"one class \('cat'\).*at least two"):
        data.load(str(root), seed=0)


def test_a_test_class_that_train_lacks_is_refused_naming_it(tmp_path, write_folder):
    root = write_folder(tmp_path / "pets")
    (root / "test" / "fox").mkdir()
    shutil.copy(root / "test" / "cat" / "0.png", root / "test" / "fox" / "0.png")
    with pytest.raises(ValueError, match=r"test classes not in train: 'fox'"):
        data.load(str(root), seed=0)


def test_images_are_regular_files_with_the_extensions_tfds_reads(tmp_path, write_folder):
    assert set(folder.EXTENSIONS) == set(image_folder._SUPPORTED_IMAGE_FORMAT)
    root = write_folder(tmp_path / "pets")
    (root / "train" / "cat" / "extra.png").mkdir()  # a folder named like an image
    for name in ("upper.PNG", "upper.JPG", "upper.JpEg"):
        Image.new("RGB", (10, 12)).save(root / "train" / "cat" / name, format="PNG")
    Image.new("RGB", (3, 3)).save(root / "train" / "cat" / "other.gif")  # not read
    (root / "train" / "cat" / "notes.png.txt").write_text("not an image")
    found = folder.images(str(root))
    assert sorted(p.name for p in found["train"]["cat"]) == [
        "0.png", "1.png", "2.png", "3.png", "4.png", "5.png",
        "upper.JPG", "upper.JpEg", "upper.PNG",
    ]  # fmt: skip
    ds = data.load(str(root), seed=0, validation_fraction=0.25)
    assert len(ds.train[1]) + len(ds.validation[1]) == 21


def refused(root, what):
    """The whole message of a refused layout at `root`."""
    return (
        f"Expected an image folder PATH/<train|test>/<class>/<image>: {what}. "
        f"Received: dataset={str(root)!r}"
    )


def _remove_train(root):
    shutil.rmtree(root / "train")


def _empty_split(split):
    def change(root):
        shutil.rmtree(root / split)
        (root / split).mkdir()

    return change


def _one_class(root):
    for split in ("train", "test"):
        for name in ("dog", "eel"):
            shutil.rmtree(root / split / name)


def _two_unknown_test_classes(root):
    for name in ("fox", "gnu"):
        (root / "test" / name).mkdir()
        shutil.copy(root / "test" / "cat" / "0.png", root / "test" / name / "0.png")


@pytest.mark.parametrize(
    "change, what",
    [
        (shutil.rmtree, lambda root: "no such folder"),
        (_remove_train, lambda root: "missing the 'train' folder"),
        (
            _empty_split("train"),
            lambda root: f"no .png/.jpg images in {str(root / 'train')!r}/<class>/",
        ),
        (
            _empty_split("test"),
            lambda root: f"no .png/.jpg images in {str(root / 'test')!r}/<class>/",
        ),
        (_one_class, lambda root: "one class ('cat') in 'train': at least two are needed"),
        (_two_unknown_test_classes, lambda root: "test classes not in train: 'fox', 'gnu'"),
    ],
)
def test_a_refused_layout_names_the_folder_and_the_rule_in_one_message(
    tmp_path, write_folder, change, what
):
    root = write_folder(tmp_path / "pets")
    change(root)
    with pytest.raises(ValueError) as error:
        folder.images(str(root))
    assert str(error.value) == refused(root, what(root))


def test_an_empty_class_folder_message_names_the_class_folder(tmp_path, write_folder):
    root = write_folder(tmp_path / "pets")
    (root / "train" / "fox").mkdir()
    with pytest.raises(ValueError) as error:
        folder.images(root)  # a Path as well as a str
    what = f"class folder {str(root / 'train' / 'fox')!r} holds no .png/.jpg images"
    assert str(error.value) == refused(root, what)


def test_files_beside_the_class_folders_are_not_classes(tmp_path, write_folder):
    root = write_folder(tmp_path / "pets")
    (root / "train" / "README.txt").write_text("about the pets")
    Image.new("RGB", (10, 12)).save(root / "test" / "stray.png")  # not in a class folder
    found = folder.images(str(root))
    assert {split: list(classes) for split, classes in found.items()} == {
        "train": ["cat", "dog", "eel"],
        "test": ["cat", "dog", "eel"],
    }


def test_the_warning_names_every_untested_class(tmp_path, write_folder):
    root = write_folder(tmp_path / "pets")
    for name in ("cat", "eel"):
        shutil.rmtree(root / "test" / name)
    with pytest.warns(UserWarning) as record:
        folder.builder(str(root))
    ours = [w for w in record if "no test images" in str(w.message)]
    assert [str(w.message) for w in ours] == [
        f"dataset {str(root)!r}: classes 'cat', 'eel' have no test images"
    ]


def test_the_image_checks_name_the_file_and_what_is_allowed(tmp_path):
    colour, grey, rgba = (tmp_path / name for name in ("colour.png", "grey.png", "rgba.png"))
    Image.new("RGB", (10, 12)).save(colour)
    Image.new("L", (10, 12)).save(grey)  # one size, another mode
    Image.new("RGBA", (10, 12)).save(rgba)
    assert folder.example_shape([colour, colour]) == (12, 10, 3)
    assert folder.example_shape([grey]) == (12, 10, 1)
    with pytest.raises(ValueError) as error:
        folder.example_shape([colour, grey])
    assert str(error.value) == (
        f"Expected images of one size and mode: {str(colour)!r} is (12, 10, 3), "
        f"{str(grey)!r} is (12, 10, 1) (height, width, channels). Received: mixed image sizes"
    )
    with pytest.raises(ValueError) as error:
        folder.example_shape([colour, rgba])
    assert (
        str(error.value) == f"Expected grey (L) or RGB images. Received: mode RGBA in {str(rgba)!r}"
    )
    broken = tmp_path / "broken.png"
    broken.write_bytes(colour.read_bytes()[:-20])  # the header reads, the end is cut
    with pytest.raises(ValueError) as error:
        folder.example_shape([colour, broken])
    message = str(error.value)
    expected = f"Expected readable PNG or JPEG images. Received: unreadable image {str(broken)!r} ("
    assert message.startswith(expected) and message.endswith(")")


def test_the_view_is_a_temporary_tfnn_images_folder_removed_at_exit_without_the_images(
    tmp_path, write_folder, monkeypatch
):
    at_exit = []
    monkeypatch.setattr(folder.atexit, "register", lambda *call, **kw: at_exit.append((call, kw)))
    root = write_folder(tmp_path / "pets")
    view = pathlib.Path(folder.builder(str(root)).data_dir)
    assert view.parent == pathlib.Path(tempfile.gettempdir())
    assert view.name.startswith("tfnn-images-") and (view / "train" / "cat" / "0.png").is_symlink()
    [((remove, *args), kwargs)] = at_exit
    remove(*args, **kwargs)
    assert not view.exists() and (root / "train" / "cat" / "0.png").is_file()
    remove(*args, **kwargs)  # already gone (a cleaner of the temporary folder): no error at exit


def test_a_view_carries_its_process_id_and_a_dead_processs_view_is_removed(
    tmp_path, write_folder, monkeypatch
):
    """A SIGKILL or SIGTERM skips the atexit removal, so views accumulated: catches a view
    named without its owner's process id, and one made without first removing the views of
    processes that no longer exist (while a live process's view is kept)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.setattr(folder.atexit, "register", lambda *call, **kw: None)
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = temporary / f"tfnn-images-{int(ended.stdout)}-abc123"
    live = temporary / f"tfnn-images-{os.getppid()}-def456"
    unknown = temporary / "tfnn-images-xyz789"  # an older view without an id: not ours to judge
    for view in (dead, live, unknown):
        (view / "train" / "cat").mkdir(parents=True)
    root = write_folder(tmp_path / "pets")
    made = pathlib.Path(folder.builder(str(root)).data_dir)
    assert made.parent == temporary and made.name.startswith(f"tfnn-images-{os.getpid()}-")
    assert not dead.exists() and live.is_dir() and unknown.is_dir()
    assert (root / "train" / "cat" / "0.png").is_file()


def test_ignored_entries_are_one_warning_with_their_count_naming_the_first_few(
    tmp_path, write_folder
):
    """Catches entries dropped silently (`filter(pathlib.Path.is_dir, …)` and
    `filter(_is_image, …)` with no word of what they left out): an extra split folder, a
    sub-folder of a class, a dangling link, a link loop and a file loose in a split."""
    root = write_folder(tmp_path / "pets")
    (root / "validation" / "cat").mkdir(parents=True)
    shutil.copytree(root / "train" / "cat", root / "train" / "cat" / "more")
    (root / "train" / "dog" / "gone.png").symlink_to(tmp_path / "absent.png")
    (root / "train" / "dog" / "loop.png").symlink_to(root / "train" / "dog" / "loop.png")
    shutil.copy(root / "train" / "cat" / "0.png", root / "train" / "loose.png")
    with pytest.warns(UserWarning) as record:
        found = folder.images(str(root))
    ours = [str(w.message) for w in record if "ignored" in str(w.message)]
    assert ours == [
        f"dataset {str(root)!r}: 5 entries ignored (not <train|test>/<class>/<image>): "
        "'validation', 'train/cat/more', 'train/dog/gone.png', …"
    ]
    # What is read is unchanged: the three classes and their own images only.
    assert {split: {c: len(f) for c, f in classes.items()} for split, classes in found.items()} == {
        "train": {"cat": 6, "dog": 6, "eel": 6},
        "test": {"cat": 2, "dog": 2, "eel": 2},
    }


def test_three_ignored_entries_are_all_named_and_none_is_no_warning(tmp_path, write_folder):
    """At the limit of the names shown, no "…"; a clean folder gives no warning at all."""
    root = write_folder(tmp_path / "pets")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder.images(str(root))
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / "test" / name).write_text("notes")
    with pytest.warns(UserWarning) as record:
        folder.images(str(root))
    assert [str(w.message) for w in record] == [
        f"dataset {str(root)!r}: 3 entries ignored (not <train|test>/<class>/<image>): "
        "'test/a.txt', 'test/b.txt', 'test/c.txt'"
    ]
