"""Files written whole: every file of a run is written under a temporary name in its own
folder, flushed to disk and renamed over its final name, so a reader (or a rerun after a
kill) finds the old content or the new, never half of it.

    with replacing(path) as temporary:      # any writer that takes a path: Keras's
        model.save_weights(str(temporary))  # savers, matplotlib, h5py
    write_atomically(path, text)            # text and JSON

The temporary name ends with the final one (".tmp-<random>-model.weights.h5"), so savers
that choose the format by the extension write the same file. A temporary a kill left
behind is removed by `remove_temporaries`.

    with locked(path):                      # one process at a time in this block
        ...
"""

import contextlib
import fcntl
import os
import pathlib
import secrets

PREFIX = ".tmp-"


@contextlib.contextmanager
def replacing(path):
    """Yields a temporary path beside `path` to write; once the block ends, the temporary is
    synced to disk and renamed to `path`. If the block raises, `path` keeps its old content
    and the temporary is removed."""
    path = pathlib.Path(path)
    temporary = _new_file(path)
    try:
        yield temporary
        _sync(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync(path.parent)  # the rename itself survives a power loss


def _new_file(path):
    """A new empty file ".tmp-<random>-<name>" beside `path`, created with mode 0o666 less
    the umask, as a plain write would create `path` (mkstemp's files are always 0o600)."""
    while True:
        temporary = path.parent / f"{PREFIX}{secrets.token_hex(4)}-{path.name}"
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temporary


def write_atomically(path, text):
    """Writes `text` to `path` through `replacing`."""
    with replacing(path) as temporary:
        temporary.write_text(text)


def remove_temporaries(folder):
    """Deletes the temporaries `replacing` left under `folder` (a kill mid-write leaves one);
    call it only where no other process is writing."""
    for temporary in pathlib.Path(folder).rglob(f"{PREFIX}*"):
        if temporary.is_file():
            temporary.unlink()


@contextlib.contextmanager
def locked(path):
    """Holds an exclusive flock on `path` while inside (a file is created if missing; a
    folder is locked as itself): processes entering it with the same path take turns."""
    if os.path.isdir(path):
        fd = os.open(path, os.O_RDONLY)
    else:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _sync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
