"""A user's own images as a TFDS data set: a folder in TFDS's ImageFolder layout.

    PATH/train/<class>/<image>      the training images (validation is carved from them)
    PATH/test/<class>/<image>       the test images

Images are PNG or JPEG files of one size and one colour mode (grey: 1 channel,
RGB: 3). The rules, checked before anything is read:

- hidden entries (a name starting with '.', such as `.ipynb_checkpoints/` or
  `.DS_Store`) are ignored everywhere: split folders, class folders, files;
- an image is a regular file whose name ends in .png, .jpg or .jpeg, in any
  case (what ImageFolder reads); a folder named like an image is not one;
- a class is a sub-folder of `train/` holding at least one image; the classes
  are their names, sorted, and the labels their indices;
- any other visible entry (a folder beside train/ and test/, a file loose in a
  split, a sub-folder of a class, a dangling link or a link loop, a file that
  is not an image) is ignored, with one warning giving their count and naming
  the first few;
- refused (ValueError): an empty class folder (in either split), fewer than
  two classes, a class under `test/` that `train/` lacks. A class with no
  test images is a warning.

`builder(PATH)` checks the layout, decoding each image once (an image that
does not decode is refused before the run starts), and returns a
`tfds.folder_dataset.ImageFolder`, which decodes the images as they are read.
ImageFolder lists folders itself, every split and class folder and every name
ending like an image, hidden or empty; so it is given a view: a temporary
folder (`tfnn-images-<pid>-*` in the system's temporary folder) of links to
exactly the checked images, removed when the process exits (the images stay);
a view whose process was killed before it could remove it is removed by the
next process that makes a view.
"""

import atexit
import os
import pathlib
import re
import shutil
import tempfile
import warnings

import tensorflow_datasets as tfds
from PIL import Image

from tfnn import validation

SPLITS = ("train", "test")
EXTENSIONS = (".png", ".jpg", ".jpeg")  # what ImageFolder reads, compared in lower case
CHANNELS = {"L": 1, "RGB": 3}
IGNORED_SHOWN = 3  # ignored entries named in the warning (then "…"; the count is whole)


def _refuse(path, what):
    validation.fail(
        "dataset", str(path), f"an image folder PATH/<train|test>/<class>/<image>: {what}"
    )


def _visible(folder):
    """The entries of `folder` whose names do not start with '.', sorted."""
    return sorted(path for path in folder.iterdir() if not path.name.startswith("."))


def _utf8(root, path):
    """`path`, whose name TensorFlow and TFDS must read as UTF-8 (a name that is not fails in
    their file listing, naming neither the file nor the data set)."""
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        _refuse(
            root,
            f"a name that is not UTF-8 in {str(path.parent)!r}: {os.fsencode(path.name)!r}",
        )
    return path


def _is_image(path):
    return path.is_file() and path.suffix.lower() in EXTENSIONS


def images(root):
    """{split: {class: [image files]}} of the folder, sorted; raises ValueError for a bad
    layout (see the module's rules) and warns of ignored entries and of a class without test
    images."""
    name, root = root, pathlib.Path(root)
    if not root.is_dir():
        _refuse(name, "no such folder")
    found = {}
    ignored = [path for path in _visible(root) if path.name not in SPLITS]
    for split in SPLITS:
        if not (root / split).is_dir():
            _refuse(name, f"missing the {split!r} folder")
        found[split] = {}
        for folder in _visible(root / split):
            if not folder.is_dir():  # a file loose in the split, a dangling link, a loop
                ignored.append(folder)
                continue
            _utf8(name, folder)
            entries = _visible(folder)
            files = [_utf8(name, path) for path in filter(_is_image, entries)]
            ignored += [path for path in entries if not _is_image(path)]
            if not files:
                _refuse(name, f"class folder {str(folder)!r} holds no .png/.jpg images")
            found[split][folder.name] = files
        if not found[split]:
            _refuse(name, f"no .png/.jpg images in {str(root / split)!r}/<class>/")
    classes = list(found["train"])
    if len(classes) < 2:
        _refuse(name, f"one class ({classes[0]!r}) in 'train': at least two are needed")
    unknown = [c for c in found["test"] if c not in found["train"]]
    if unknown:
        _refuse(name, f"test classes not in train: {', '.join(map(repr, unknown))}")
    if ignored:
        shown = [repr(str(path.relative_to(root))) for path in ignored[:IGNORED_SHOWN]]
        more = ", …" if len(ignored) > IGNORED_SHOWN else ""
        warnings.warn(
            f"dataset {name!r}: {len(ignored)} entries ignored (not "
            f"<train|test>/<class>/<image>): {', '.join(shown)}{more}",
            stacklevel=3,
        )
    untested = [c for c in classes if c not in found["test"]]
    if untested:
        warnings.warn(
            f"dataset {name!r}: classes {', '.join(map(repr, untested))} have no test images",
            stacklevel=3,
        )
    return found


def example_shape(files):
    """(height, width, channels) shared by every image; decodes each one whole, so an image
    TensorFlow could not decode is refused here rather than in the middle of a run."""
    first = shape = None
    for path in files:
        try:
            with Image.open(path) as image:
                image.verify()  # the chunks' checksums; after it the image must be reopened
            with Image.open(path) as image:
                image.load()  # the pixels: a valid header over a broken stream fails here
                size, mode = image.size, image.mode
        except (OSError, SyntaxError, Image.DecompressionBombError) as error:
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
    """A prepared `tfds.folder_dataset.ImageFolder` of the checked images, its shape fixed;
    its class names are exactly the train classes (`images`)."""
    found = images(root)
    files = [path for split in found.values() for paths in split.values() for path in paths]
    return tfds.folder_dataset.ImageFolder(str(_view(found)), shape=example_shape(files))


VIEW_PREFIX = "tfnn-images-"  # then the owning process's id, '-' and mkdtemp's random part
_VIEW_NAME = re.compile(re.escape(VIEW_PREFIX) + r"(\d+)-")


def _alive(pid):
    """Whether process `pid` exists (another user's counts: it may not be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphaned_views(folder=None):
    """Removes the views in `folder` (the system's temporary folder) whose owning process no
    longer exists: a SIGKILL or SIGTERM skips the atexit removal. Returns those removed."""
    folder = pathlib.Path(folder or tempfile.gettempdir())
    removed = []
    for path in folder.glob(VIEW_PREFIX + "*"):
        match = _VIEW_NAME.match(path.name)
        if match and not _alive(int(match[1])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _view(found):
    """A temporary folder split/class/image of links to the `found` images, removed at exit;
    its name carries this process's id, so a later process removes it if this one was killed."""
    remove_orphaned_views()
    view = pathlib.Path(tempfile.mkdtemp(prefix=f"{VIEW_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, view, ignore_errors=True)
    for split, classes in found.items():
        for name, paths in classes.items():
            (view / split / name).mkdir(parents=True)
            for path in paths:
                (view / split / name / path.name).symlink_to(path.resolve())
    return view
