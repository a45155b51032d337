"""A user's own images as a TFDS data set: a folder in TFDS's ImageFolder layout.

    PATH/train/<class>/<image>      the training images (validation is carved from them)
    PATH/test/<class>/<image>       the test images

Images are PNG or JPEG files of one size and one colour mode (grey: 1 channel,
RGB: 3); the class names are the sub-folder names. `builder(PATH)` checks the
layout, reading only each image's header, and returns a
`tfds.folder_dataset.ImageFolder`, which decodes the images as they are read.
"""

import pathlib

import tensorflow_datasets as tfds
from PIL import Image, UnidentifiedImageError

from tfnn import validation

SPLITS = ("train", "test")
EXTENSIONS = (".png", ".jpg", ".jpeg")  # what ImageFolder reads
CHANNELS = {"L": 1, "RGB": 3}


def _refuse(path, what):
    validation.fail(
        "dataset", str(path), f"an image folder PATH/<train|test>/<class>/<image>: {what}"
    )


def images(root):
    """{split: [image files]} of the folder, sorted; raises ValueError for a bad layout."""
    name, root = root, pathlib.Path(root)
    if not root.is_dir():
        _refuse(name, "no such folder")
    found = {}
    for split in SPLITS:
        if not (root / split).is_dir():
            _refuse(name, f"missing the {split!r} folder")
        found[split] = sorted(
            path
            for path in (root / split).glob("*/*")
            if path.is_file() and path.suffix.lower() in EXTENSIONS
        )
        if not found[split]:
            _refuse(name, f"no .png/.jpg images in {str(root / split)!r}/<class>/")
    return found


def example_shape(files):
    """(height, width, channels) shared by every image; reads headers only."""
    first = shape = None
    for path in files:
        try:
            with Image.open(path) as image:
                image.verify()
                size, mode = image.size, image.mode
        except (OSError, UnidentifiedImageError, SyntaxError) as error:
            raise ValueError(
                f"Expected readable PNG or JPEG images. Received: unreadable image {str(path)!r} "
                f"({error})"
            ) from None
        if mode not in CHANNELS:
            raise ValueError(
                f"Expected grey (L) or RGB images. Received: mode {mode} in {str(path)!r}"
            )
        this = (size[1], size[0], CHANNELS[mode])
        if shape is None:
            first, shape = path, this
        elif this != shape:
            raise ValueError(
                f"Expected images of one size and mode: {str(first)!r} is {shape}, "
                f"{str(path)!r} is {this} (height, width, channels). Received: mixed image sizes"
            )
    return shape


def builder(root):
    """A prepared `tfds.folder_dataset.ImageFolder` of the folder, its shape fixed."""
    found = images(root)
    shape = example_shape(found["train"] + found["test"])
    return tfds.folder_dataset.ImageFolder(str(root), shape=shape)
