"""Files written whole: the temporary beside the final name, the rename, nothing left over."""

import os
import stat

import keras
import numpy as np
import pytest

from tfnn import files


class Killed(Exception):
    """Stands for a kill in the middle of a write."""


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.weights.h5"
    path.write_bytes(b"old")
    with pytest.raises(Killed):
        with files.replacing(path) as temporary:
            temporary.write_bytes(b"half a fi")
            raise Killed
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.weights.h5"]


def test_a_new_file_appears_only_once_written_whole(tmp_path):
    path = tmp_path / "ensemble.json"
    with files.replacing(path) as temporary:
        temporary.write_text("{}")
        assert not path.exists()  # a reader meanwhile finds nothing, not half a file
    assert path.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["ensemble.json"]
    files.write_atomically(path, '{"members": 2}')
    assert path.read_text() == '{"members": 2}' and len(list(tmp_path.iterdir())) == 1


def test_keras_savers_write_the_temporary_in_the_format_of_the_final_name(tmp_path):
    """Keras refuses a weights file not named *.weights.h5 and a model not named *.keras."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    for name, save in [("m.weights.h5", model.save_weights), ("m.keras", model.save)]:
        with files.replacing(tmp_path / name) as temporary:
            assert temporary.parent == tmp_path and temporary.name.endswith(f"-{name}")
            save(str(temporary))
    loaded = keras.models.load_model(str(tmp_path / "m.keras"))
    loaded.load_weights(str(tmp_path / "m.weights.h5"))
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.weights.h5"]


def test_temporaries_a_kill_left_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "member-1").mkdir()
    left = tmp_path / "member-1" / f"{files.PREFIX}abc-model.weights.h5"
    left.write_bytes(b"half")
    (tmp_path / "history.csv").write_text("epoch\n")
    files.remove_temporaries(tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "history.csv",
        "member-1",
    ]


def test_locked_blocks_take_turns_on_a_file_and_on_a_folder(tmp_path):
    """Catches `locked` without its flock (the second block would run inside the first) or
    never releasing it (the second would wait forever: the join times out)."""
    import threading
    import time

    for path in (tmp_path / "lock", tmp_path):
        events = []

        def block(name, path=path, events=events):
            with files.locked(path):
                events.append(f"{name} in")
                time.sleep(0.2)
                events.append(f"{name} out")

        first = threading.Thread(target=block, args=("first",))
        first.start()
        time.sleep(0.05)
        second = threading.Thread(target=block, args=("second",))
        second.start()
        first.join(5)
        second.join(5)
        assert events == ["first in", "first out", "second in", "second out"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_file_written_whole_gets_the_mode_the_umask_gives_a_new_file(tmp_path, umask):
    """metrics.json, the learning curves, the weights: the mode a plain write would give
    (0o666 less the umask), so others read a run folder as they read the rest of the user's
    files. Catches the temporary made by `mkstemp`, always 0o600, renamed into place."""
    before = os.umask(umask)
    try:
        files.write_atomically(tmp_path / "metrics.json", "{}")
        with files.replacing(tmp_path / "model.weights.h5") as temporary:
            temporary.write_bytes(b"weights")
    finally:
        os.umask(before)
    for name in ("metrics.json", "model.weights.h5"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
