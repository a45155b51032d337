"""The run folder's identity, lock, lifecycle, backup recovery and path checks, in this process
without training (the stages a rerun skips after training: test_resume.py)."""

import fcntl
import json
import os
import pathlib
import shutil
import signal
import stat
import threading
import time

import h5py
import numpy as np
import pytest

from tfnn import files
from tfnn.cli import train as cli_train
from tfnn.recipe import run as runs
from tfnn.recipe.options import Options


@pytest.fixture
def options(tmp_path):
    def make(**changes):
        return Options(
            **{
                "dataset": "digits",
                "logdir": str(tmp_path / "logs"),
                "export_dir": str(tmp_path / "out"),
                **changes,
            }
        )

    return make


@pytest.fixture
def located():
    """Releases every run this test locked."""
    folders = []

    def locate(options):
        folders.append(runs.locate(options))
        return folders[-1]

    yield locate
    for folder in folders:
        runs.release(folder)


@pytest.mark.parametrize(
    "change", [{"model_name": "other"}, {"export_dir": "elsewhere"}, {"epochs": 3}, {"seed": 1}]
)
def test_every_output_changing_option_changes_the_identity(options, change):
    assert runs.identity(options(**change)) != runs.identity(options())


@pytest.mark.parametrize("change", [{"verbose": 0}, {"data_dir": "/elsewhere"}, {"threads": 1}])
def test_options_that_change_nothing_written_keep_the_identity(options, change):
    assert runs.identity(options(**change)) == runs.identity(options())


def test_an_image_folder_named_relatively_is_identified_by_where_it_is(
    options, tmp_path, monkeypatch
):
    """`--dataset pets` from two working folders names two data sets; its spellings in one
    folder name one. Catches the dataset's path left as typed in the identity (with an
    absolute --logdir, a killed run on one folder's images was resumed on the other's)."""
    for parent in ("a", "b"):
        (tmp_path / parent / "pets").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    in_a = runs.identity(options(dataset="pets"))
    assert in_a == runs.identity(options(dataset=str(tmp_path / "a" / "pets")))
    monkeypatch.chdir(tmp_path / "b")
    assert runs.identity(options(dataset="pets")) != in_a
    assert runs.identity(options(dataset="./pets/")) == runs.identity(options(dataset="pets"))


def test_runs_differing_by_model_name_get_their_own_folders(options, located):
    first, second = located(options()), located(options(model_name="other"))
    assert first.path != second.path and first.resume != second.resume


def test_a_second_process_on_the_same_run_is_refused_in_one_line(options, located):
    folder = located(options())
    with pytest.raises(runs.RunLocked) as raised:
        runs.locate(options())  # a new open file description: as another process would hold
    message = str(raised.value)
    assert "\n" not in message and f"pid {os.getpid()}" in message
    assert message.startswith("Expected no other process") and f"run='{folder.path}'" in message


def test_an_unfinished_run_is_found_again_once_released(options, located):
    first = located(options())
    runs.release(first)
    assert located(options()).path == first.path


def test_the_lifecycle_records_stages_in_order_with_their_facts(options, located):
    folder = located(options())
    assert folder.lifecycle() == {"stage": None} and not folder.done("prepared")
    folder.record("prepared")
    folder.record("trained", epochs=3)
    assert folder.done("prepared") and folder.done("trained") and not folder.done("evaluated")
    folder.record("evaluated", val={"loss": 1.0})
    assert folder.lifecycle() == {"stage": "evaluated", "epochs": 3, "val": {"loss": 1.0}}
    assert [p.name for p in folder.path.iterdir()] == ["lifecycle.json"]  # no temporary left


def write_backup(folder, epochs, readable=True):
    backup = folder.resume / "backup"
    backup.mkdir(parents=True)
    if readable:
        with h5py.File(backup / "latest.weights.h5", "w") as file:
            file["w"] = [1.0, 2.0]
    else:  # what a kill during the write leaves
        (backup / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    # Keras's metadata: the count of finished epochs (it saves epoch + 1 at an epoch's end)
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": epochs, "batch": 0}))


def write_history(folder, rows, partial=False):
    lines = ["epoch,loss\n", *(f"{i},{1.0 / (i + 1)}\n" for i in range(rows))]
    folder.history_path.write_text("".join(lines) + ("3,0.2" if partial else ""))


def test_an_unreadable_backup_is_moved_aside_and_training_restarts(options, located):
    folder = located(options())
    write_backup(folder, epochs=2, readable=False)
    write_history(folder, rows=2)
    runs.release(folder)
    with pytest.warns(UserWarning, match="unreadable; moved to"):
        again = located(options())
    assert not (again.resume / "backup").exists()
    (aside,) = again.resume.glob("unreadable-backup-*")
    assert (aside / "latest.weights.h5").is_file()
    assert again.history() == {}  # no epoch recorded twice when training restarts


def test_history_keeps_the_epochs_the_backup_holds(options, located):
    folder = located(options())
    write_backup(folder, epochs=2)
    write_history(folder, rows=3, partial=True)  # killed after the backup of epoch 2's row
    runs.release(folder)
    again = located(options())
    assert again.history()["epoch"] == [0.0, 1.0]
    assert (again.resume / "backup" / "latest.weights.h5").is_file()


def test_a_trained_run_keeps_its_history_without_a_backup(options, located):
    folder = located(options())
    write_history(folder, rows=3)
    folder.record("trained", epochs=3)
    runs.release(folder)
    assert located(options()).history()["epoch"] == [0.0, 1.0, 2.0]


def test_a_logdir_naming_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(runs.RunError, match=r"^Expected a folder this process can write") as e:
        runs.check_writable("logdir", str(tmp_path / "file" / "logs"))
    assert "\n" not in str(e.value) and str(e.value).endswith(f"logdir='{tmp_path}/file/logs'")


def test_too_little_free_space_is_refused_before_training(tmp_path, monkeypatch):
    full = runs.shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6)
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda path: full)
    with pytest.raises(runs.RunError, match="MB free") as raised:
        runs.check_writable("export_dir", str(tmp_path / "out"), need_bytes=10_000_000)
    assert isinstance(raised.value, ValueError)
    runs.check_writable("export_dir", str(tmp_path / "out"))  # nothing needed: fine
    assert [p.name for p in pathlib.Path(tmp_path / "out").iterdir()] == []


def test_the_command_line_refuses_a_logdir_naming_a_file_in_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    flags = ["--dataset", "breast_cancer", "--logdir", str(tmp_path / "file")]
    with pytest.raises(SystemExit) as exit_:
        cli_train.main([*flags, "--export_dir", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("train.py: error: Expected a folder this process can write")
    assert err[-1].endswith(f"logdir='{tmp_path}/file'") and not (tmp_path / "out" / "x").exists()


def test_members_recorded_at_once_by_many_processes_are_all_kept(options, located, monkeypatch):
    """Workers record their members concurrently; a read-modify-write without the lock
    would drop some (the write is slowed to let them overlap)."""
    folder = located(options())
    folder.record("prepared")
    write = runs.write_atomically

    def slow(path, text):
        time.sleep(0.01)
        write(path, text)

    monkeypatch.setattr(runs, "write_atomically", slow)
    threads = [
        threading.Thread(target=folder.member(i).record_member, args=(i,)) for i in range(1, 9)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert folder.lifecycle() == {"stage": "prepared", "members": [*range(1, 9)]}
    assert all(folder.member_done(i) for i in range(1, 9)) and not folder.member_done(9)


def test_members_figures_are_recorded_by_member_and_kept_beside_the_stages(options, located):
    """Catches one member's figures replacing another's, figures lost when a stage is
    recorded after them, or a member without figures read as having some."""
    folder = located(options())
    folder.record("prepared")
    folder.member(2).record_member_figures(2, {"val": {"accuracy": 0.5}})
    folder.record_member_figures(1, {"val": {"accuracy": 0.25}})
    folder.record("trained")
    assert folder.member_figures(2) == {"val": {"accuracy": 0.5}}
    assert folder.member(1).member_figures(1) == {"val": {"accuracy": 0.25}}
    assert folder.member_figures(3) is None
    assert json.loads(folder.lifecycle_path.read_text())["stage"] == "trained"


def test_a_members_file_without_its_record_is_not_trusted_on_resume(options, located):
    """A member's weights file (left by a write a kill cut short) does not make it finished:
    its history is trimmed to its backup like any unfinished fit; leftover temporaries go."""
    folder = located(options())
    member = folder.member(1)
    member.path.mkdir()
    (member.path / "model.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    write_backup(member, epochs=2)
    write_history(member, rows=3, partial=True)
    (member.path / f"{files.PREFIX}x-model.weights.h5").write_bytes(b"half")
    runs.release(folder)
    again = located(options())
    assert again.member(1).history()["epoch"] == [0.0, 1.0]
    assert not list(again.path.rglob(f"{files.PREFIX}*"))


def test_a_fit_whose_backup_is_unusable_is_forgotten_and_trains_again(options, located):
    folder = located(options())
    folder.member(2).record_fitted(4)
    folder.record_fitted(4)
    assert folder.member(2).fitted() == 4 and folder.lifecycle()["fitted"] == {
        "member-2": 4,
        "run": 4,
    }
    write_backup(folder, epochs=4)
    folder.member(2).path.mkdir()  # its backup is missing
    runs.release(folder)
    again = located(options())
    assert again.fitted() == 4 and again.member(2).fitted() is None


def test_a_fault_point_raises_its_signal_in_the_calling_thread_at_once(
    monkeypatch, sigint_interrupts
):
    """Catches a fault point that fires at another point than the one named, or whose signal
    arrives after it returned (sent to the process, a signal may be handled later, on another
    thread's delivery: a test stopping a run "after training" saw it finish instead). Its
    handler raises an error of its own: a fault point firing where it should not fails the
    test rather than interrupting the whole session (`!=` for `==`)."""

    def fired(signum, frame):
        raise Fired(signum)

    signal.signal(signal.SIGINT, fired)  # sigint_interrupts restores the handler
    monkeypatch.setenv("TFNN_FAULT_AT", "evaluate:SIGINT")
    runs.fault_point("export")  # not the point named: nothing
    with pytest.raises(Fired):
        runs.fault_point("evaluate")
        pytest.fail("the fault point returned before its signal was handled")


class Fired(Exception):
    """A fault point's signal, handled."""


# Each part of the run folder, its lock and its lifecycle, in process and in milliseconds (the
# tests above that train reach them too, at seconds a test).


def test_a_fault_point_named_alone_raises_sigkill_and_none_set_does_nothing(monkeypatch):
    """Catches the default signal of `TFNN_FAULT_AT=<point>` other than SIGKILL (the one a
    test of a kill relies on), and a fault point raising, or failing, when none is set."""
    raised = []
    monkeypatch.setattr(runs.signal, "raise_signal", raised.append)
    monkeypatch.delenv("TFNN_FAULT_AT", raising=False)
    runs.fault_point("fitted")
    monkeypatch.setenv("TFNN_FAULT_AT", "fitted")
    runs.fault_point("fitted")
    monkeypatch.setenv("TFNN_FAULT_AT", "fitted:SIGTERM")
    runs.fault_point("fitted")
    assert raised == [runs.signal.SIGKILL, runs.signal.SIGTERM]


def test_a_run_folders_files_and_its_members(tmp_path):
    """Catches a file of the run named otherwise than the module's docstring says (history.csv,
    the resume folder's trained.keras and backup/), or a member's folders and run not those of
    member-<i> inside the run's (a member of a member still records in the run's lifecycle)."""
    folder = runs.RunFolder(tmp_path / "run", tmp_path / "resume")
    assert (folder.history_path, folder.model_path, folder.backup) == (
        tmp_path / "run" / "history.csv",
        tmp_path / "resume" / "trained.keras",
        tmp_path / "resume" / "backup",
    )
    member = folder.member(2)
    assert member == runs.RunFolder(
        tmp_path / "run" / "member-2", tmp_path / "resume" / "member-2", run=tmp_path / "run"
    )
    assert (member.part, folder.part) == ("member-2", "run")
    assert member.member(1).run == tmp_path / "run"
    assert member.lifecycle_path == folder.lifecycle_path == tmp_path / "run" / "lifecycle.json"


def test_metrics_and_the_lifecycle_are_indented_json_ending_in_a_newline(options, located):
    """Catches metrics.json or lifecycle.json written in another layout (indent, no final
    newline) than the one people read."""
    folder = located(options())
    folder.write_metrics({"val": {"loss": 0.5}})
    text = '{\n  "val": {\n    "loss": 0.5\n  }\n}\n'
    assert (folder.path / "metrics.json").read_text() == text
    folder.record("prepared")
    assert folder.lifecycle_path.read_text() == '{\n  "stage": "prepared"\n}\n'


def test_a_new_runs_records_are_empty_and_forgetting_a_fit_never_recorded_is_fine(options, located):
    """Catches the readers of a lifecycle without a fit, member or snapshot recorded failing
    (`.get("fitted", None)`, `.get("members", None)`, `.get("snapshots", None)`), forgetting
    a fit that was never recorded failing (`pop(part)`), and snapshots not kept in order."""
    folder = located(options())
    assert folder.fitted() is None and not folder.member_done(1)
    assert folder.snapshots_done() == []
    folder.record_fitted(None)
    assert folder.lifecycle() == {"stage": None, "fitted": {}}
    folder.record_snapshot(4)
    folder.record_snapshot(2)
    assert folder.snapshots_done() == [2, 4]


def test_a_backup_dropped_twice_and_a_run_finished_twice_are_fine(options, located):
    """Catches `drop_backup` or `finish` raising for a folder already gone (ignore_errors
    dropped), and `finish` leaving an empty .resume behind or removing one that still holds
    another unfinished run."""
    first, second = located(options()), located(options(seed=1))
    first.backup.mkdir()
    first.drop_backup()
    first.drop_backup()
    assert not first.backup.exists() and first.resume.is_dir()
    first.finish()
    first.finish()
    assert not first.resume.exists() and second.resume.is_dir()
    second.finish()
    assert not (first.resume.parent).exists()


def test_option_values_in_folder_names():
    """Catches `_text` writing a mapping's flags with their value or without their `+`,
    or a sequence without its `_`."""
    assert runs._text({"translate": 0.1, "flip": True}) == "translate:0.1+flip"
    assert runs._text((16, 8)) == "16_8" and runs._text([3]) == "3" and runs._text(0.5) == "0.5"


def test_the_identity_is_16_hex_digits_and_the_same_for_a_relative_logdir(
    options, tmp_path, monkeypatch
):
    """Catches the key's length changed, `workers` (how many processes train, not what) in it,
    and the logdir and export_dir not made absolute (one run, two keys, by where it is run
    from)."""
    key = runs.identity(options())
    assert len(key) == 16 and int(key, 16) >= 0
    ensemble = runs.identity(options(ensemble=2))
    assert runs.identity(options(ensemble=2, workers=2)) == ensemble != key
    monkeypatch.chdir(tmp_path)
    assert runs.identity(options(logdir="logs", export_dir="out")) == key
    assert runs.identity(options(logdir="other")) != key


def test_the_lock_file_holds_the_holders_pid_and_a_stale_one_is_overwritten(options, located):
    """Catches the lock's file named otherwise, created with other permissions, or the pid not
    written whole over a longer one a finished run left (`ftruncate` dropped)."""
    resume = pathlib.Path(options().logdir) / ".resume" / runs.identity(options())
    resume.mkdir(parents=True)
    (resume / "lock").write_text("123456789012")
    folder = located(options())
    assert (folder.resume / "lock").read_text() == str(os.getpid())
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((folder.resume / "lock").stat().st_mode) == 0o644 & ~umask
    runs.release(folder)
    runs.release(folder)  # a second release: nothing held, nothing to do


def test_a_lock_held_without_a_pid_or_a_run_folder_is_reported_as_such(options):
    """Catches the refusal's "?" for a holder that wrote no pid yet, and its run named by the
    pointer file when there is none yet (the resume folder instead)."""
    resume = pathlib.Path(options().logdir) / ".resume" / runs.identity(options())
    resume.mkdir(parents=True)
    fd = os.open(resume / "lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(runs.RunLocked) as raised:
            runs.locate(options())
    finally:
        os.close(fd)
    assert str(raised.value).endswith(f"run='{resume}' held by pid ?")


def test_a_lock_file_removed_before_it_was_locked_is_made_again(options, located, monkeypatch):
    """Catches `_lock` keeping a lock on a file its holder removed between the open and the
    flock (`same = True` when the file is gone): two processes would each hold a lock."""
    stat_ = runs.os.stat
    removed = []

    def removing_stat(path, *args, **kwargs):
        if pathlib.Path(path).name == "lock" and not removed:
            removed.append(path)
            os.unlink(path)  # the holder finished and removed it
            raise FileNotFoundError(path)
        return stat_(path, *args, **kwargs)

    monkeypatch.setattr(runs.os, "stat", removing_stat)
    folder = located(options())
    monkeypatch.undo()
    assert removed and (folder.resume / "lock").read_text() == str(os.getpid())


def test_a_new_run_folder_is_named_from_the_time_and_the_changed_options(
    options, located, monkeypatch
):
    """Catches the folder's name changed: its time's format, the options' `name=value` joined
    by `,`, characters other than letters, digits and `=,._-+:` made `_`, the label cut at
    another length than 150, and a second run at the same second not `-2`, a third `-3`."""
    strftime = time.strftime
    monkeypatch.setattr(runs.time, "strftime", lambda form: strftime(form, FIXED))
    layers = (16,) * 60
    first = located(options(dataset="my data/set(1)", model="mlp", hidden_layers=(16, 8)))
    assert first.path.name == (
        "2026-12-07_091505-dataset=my_data_set_1_,model=mlp,hidden_layers=16_8"
    )
    plain = located(options(model="mlp", hidden_layers=layers))
    label = "dataset=digits,model=mlp,hidden_layers=" + "_".join(["16"] * 60)
    assert plain.path.name == "2026-12-07_091505-" + label[:150]
    again = located(options(model="mlp", hidden_layers=layers, model_name="other"))
    third = located(options(model="mlp", hidden_layers=layers, model_name="third"))
    assert (again.path.name, third.path.name) == (
        plain.path.name + "-2",
        plain.path.name + "-3",
    )


FIXED = time.struct_time((2026, 12, 7, 9, 15, 5, 0, 341, 0))


def test_a_run_whose_folder_was_removed_starts_a_new_one_and_is_found_by_its_options(
    options, located
):
    """Catches `locate` resuming a run whose folder is gone (`or` for `and`), and
    `unfinished_folder` not the folder `locate` resumes (None before and after)."""
    assert runs.unfinished_folder(options()) is None
    folder = located(options())
    assert runs.unfinished_folder(options()) == str(folder.path)
    runs.release(folder)
    shutil.rmtree(folder.path)
    again = located(options())
    assert again.path.is_dir() and runs.unfinished_folder(options()) == str(again.path)
    again.finish()
    assert runs.unfinished_folder(options()) is None


@pytest.mark.parametrize("metadata", [None, "{", '{"batch": 0}'])
def test_a_backup_without_its_epoch_is_moved_aside(options, located, metadata):
    """Catches a backup whose metadata is missing, not JSON or without "epoch" trusted (or
    failing the resume) instead of moved aside like an unreadable one."""
    folder = located(options())
    write_backup(folder, epochs=2)
    path = folder.backup / "training_metadata.json"
    path.unlink() if metadata is None else path.write_text(metadata)
    assert runs.resumed_epoch(folder) == 0
    runs.release(folder)
    with pytest.warns(UserWarning, match="unreadable; moved to"):
        again = located(options())
    assert not again.backup.exists()


def test_the_resumed_epoch_is_the_backups_count(options, located):
    """Catches `resumed_epoch` other than the backup's "epoch", or not 0 without a backup."""
    folder = located(options())
    assert runs.resumed_epoch(folder) == 0
    write_backup(folder, epochs=3)
    assert runs.resumed_epoch(folder) == 3


def test_history_is_read_as_floats_by_column_and_trimmed_to_whole_rows(tmp_path):
    """Catches `read_history` failing on a header alone, a missing file or one row (its
    columns read from `rows[1]`), and `trim_history`
    keeping a partial row, removing what it should keep, or rewriting an untouched file."""
    path = tmp_path / "history.csv"
    assert runs.read_history(path) == {}
    path.write_text("epoch,loss\n")
    assert runs.read_history(path) == {}
    path.write_text("epoch,loss\n1,0.5\n2,0.25\n3,0.1")
    runs.trim_history(path, 5)
    assert runs.read_history(path) == {"epoch": [1.0, 2.0], "loss": [0.5, 0.25]}
    before = path.stat().st_mtime_ns, path.stat().st_ino
    runs.trim_history(path, 2)  # already whole: untouched
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    runs.trim_history(path, 1)
    assert path.read_text() == "epoch,loss\n1,0.5\n"
    assert runs.read_history(path) == {"epoch": [1.0], "loss": [0.5]}  # columns of row 1
    runs.trim_history(path, 0)
    assert not path.exists()
    runs.trim_history(path, 0)  # no file: nothing to do


@pytest.mark.parametrize(
    "values, mode, expected",
    [([0.5, 0.25, 0.25, 0.75], "min", (2, 0.25)), ([0.5, 0.75, 0.75, 0.25], "max", (2, 0.75))],
)
def test_the_best_epoch_is_the_first_best_counted_from_1(values, mode, expected):
    """Catches `best` counting from 0, taking the last of equal values, or the other mode."""
    assert runs.best(values, mode) == expected


def test_too_little_free_space_names_both_figures(tmp_path, monkeypatch):
    """Catches the refusal's figures (MB needed, MB free) wrong or missing."""
    full = runs.shutil._ntuple_diskusage(10**9, 10**9 - 2 * 10**6, 2 * 10**6)
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda path: full)
    with pytest.raises(runs.RunError) as raised:
        runs.check_writable("export_dir", str(tmp_path), need_bytes=10_000_000)
    assert str(raised.value) == (
        f"Expected 10 MB free for the run (it has 2). Received: export_dir='{tmp_path}'"
    )
    runs.check_writable("export_dir", str(tmp_path), need_bytes=2 * 10**6)  # exactly: fine


def test_a_recorded_member_is_left_as_it_is_on_resume(options, located):
    """Catches `_recover_backups` checking recorded members' backups too (`member_done(None)`):
    a finished member's backup is gone, and its history would be removed."""
    folder = located(options())
    member = folder.member(1)
    member.path.mkdir()
    write_history(member, rows=3)
    member.record_member(1)
    runs.release(folder)
    assert located(options()).member(1).history()["epoch"] == [0.0, 1.0, 2.0]


def test_an_unreadable_backup_is_moved_to_a_folder_named_by_the_time_and_said_in_full(
    options, located, monkeypatch
):
    """Catches the aside folder's time in another format, and the warning's text other than
    where the backup was, where it went and that training restarts from its first epoch."""
    folder = located(options())
    write_backup(folder, epochs=2, readable=False)
    runs.release(folder)
    strftime = time.strftime
    monkeypatch.setattr(runs.time, "strftime", lambda form: strftime(form, FIXED))
    with pytest.warns(UserWarning) as warned:
        again = located(options())
    aside = again.resume / "unreadable-backup-20261207_091505"
    assert aside.is_dir() and [str(w.message) for w in warned] == [
        f"the resume backup {again.backup} is unreadable; moved to {aside}, "
        "training restarts from its first epoch"
    ]


def test_a_keras_backup_of_two_epochs_resumes_at_the_third_and_keeps_two_rows(options, located):
    """Catches the backup's "epoch" read as the last finished epoch's index rather than Keras's
    count of finished epochs: history.csv kept one row more than the backup holds (the resumed
    fit then wrote that epoch's row twice), or the resumed data order one epoch behind."""
    import keras

    from tfnn.callbacks import BackupAndRestore

    folder = located(options())
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.ones((4, 2), "float32")
    backup = BackupAndRestore(str(folder.backup), delete_checkpoint=False)
    model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[backup])
    write_history(folder, rows=3)  # a third epoch's row, written after the backup's
    assert runs.resumed_epoch(folder) == 2
    runs.release(folder)
    again = located(options())
    assert again.history()["epoch"] == [0.0, 1.0]


def test_the_export_written_ahead_counts_only_recorded_whole_and_still_there(options, located):
    """Catches `has_written_export` trusting the folder without its record (`or` for `and`), a
    record of False or none, or a record whose folder an export already moved away; and the
    written export's folder named otherwise than resume/export.written."""
    folder = located(options())
    assert folder.written_export == folder.resume / "export.written"
    assert not folder.has_written_export()  # nothing recorded, nothing written
    folder.written_export.mkdir()
    assert not folder.has_written_export()  # written, not recorded: a kill cut the write
    folder.record_written_export(False)
    assert folder.lifecycle()["written_export"] is False and not folder.has_written_export()
    folder.record_written_export(True)
    assert folder.lifecycle()["written_export"] is True and folder.has_written_export()
    folder.written_export.rmdir()  # moved into place by the export
    assert not folder.has_written_export()


def test_a_member_without_recorded_figures_has_none(options, located):
    """Catches `member_figures` failing on a lifecycle that holds no member's figures yet
    (`.get("member_figures", None)`), and figures recorded under another key than the member's
    number as text (what JSON keeps of a number key)."""
    folder = located(options())
    assert folder.member_figures(1) is None
    folder.member(3).record_member_figures(3, {"test": {"loss": 0.5}})
    assert folder.lifecycle()["member_figures"] == {"3": {"test": {"loss": 0.5}}}
    assert folder.member_figures(3) == {"test": {"loss": 0.5}} and folder.member_figures(1) is None


def test_the_run_state_names_every_record_the_run_folder_keeps_to_resume(options, located):
    """Catches `RUN_STATE` (what metrics.json leaves out of the lifecycle) missing a key the
    run folder records to resume, or naming one it never records: metrics.json would hold
    the resume state, or lose a result."""
    folder = located(options())
    folder.record_fitted(2)
    folder.record_member(1)
    folder.record_member_figures(1, {"val": {"loss": 0.5}})
    folder.record_snapshot(2)
    folder.record_written_export(True)
    folder.record("evaluated", exporting="out/1", val={"loss": 0.5})
    assert set(folder.lifecycle()) - {"stage", "val"} == set(runs.RUN_STATE)


def test_a_backup_broken_past_its_first_object_is_unreadable(options, located):
    """Catches `_readable` reading only the weights file's first object (a visitor that
    returns a value stops h5py's visit there): a file whose later group is broken, as a kill
    during its write can leave it, was trusted and the resumed fit crashed loading it."""
    folder = located(options())
    write_backup(folder, epochs=2)
    weights = folder.backup / "latest.weights.h5"
    with h5py.File(weights, "w") as file:
        file["a"] = [1.0]
        file.create_group("layers")["kernel"] = [2.0]
    data = weights.read_bytes()
    second = data.index(b"TREE", data.index(b"TREE") + 1)  # the group's B-tree, after the root's
    weights.write_bytes(data[:second] + b"XXXX" + data[second + 4 :])
    assert runs.resumed_epoch(folder) == 0


def test_augmentations_named_in_any_order_are_one_run(options):
    """`--augment flip+translate:0.1` and `--augment translate:0.1+flip` are equal options: one
    key. Catches the options hashed in the order they were given (`sort_keys` dropped)."""
    one = runs.identity(options(augment={"flip": True, "translate": 0.1}))
    assert one == runs.identity(options(augment={"translate": 0.1, "flip": True}))
    assert one != runs.identity(options(augment={"flip": True}))


def test_a_run_of_the_default_options_is_named_by_its_time_alone(options, located, monkeypatch):
    """Catches a run with no changed option named with a trailing "-" or other text after its
    time."""
    strftime = time.strftime
    monkeypatch.setattr(runs.time, "strftime", lambda form: strftime(form, FIXED))
    assert options(dataset="mnist1d").changed() == []
    assert located(options(dataset="mnist1d")).path.name == "2026-12-07_091505"


def test_a_backup_without_its_weights_file_is_not_resumed(options, located):
    """Catches a backup trusted for its metadata alone (`or` for the last `and`): Keras would
    find no weights to restore."""
    folder = located(options())
    write_backup(folder, epochs=2)
    (folder.backup / "latest.weights.h5").unlink()
    assert runs.resumed_epoch(folder) == 0


def test_a_folder_to_write_is_made_with_its_parents_and_figures_are_in_millions(
    tmp_path, monkeypatch
):
    """Catches `check_writable` not making a folder whose parent is missing too (`parents`
    dropped), and the refusal's figures divided by another than a million (by 1000001, a figure
    just over a half rounds down)."""
    runs.check_writable("logdir", str(tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())
    full = runs.shutil._ntuple_diskusage(10**9, 10**9 - 1_500_001, 1_500_001)
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda path: full)
    with pytest.raises(runs.RunError, match=r"^Expected 3 MB free for the run \(it has 2\)\."):
        runs.check_writable("export_dir", str(tmp_path), need_bytes=2_500_001)


def test_a_folder_checked_for_writing_alone_is_not_refused_for_its_space(tmp_path, monkeypatch):
    """The model's own folder is checked for writing alone (its disk's space was checked on
    export_dir). Catches `need_bytes` defaulting to more than nothing: a full disk refused."""
    full = runs.shutil._ntuple_diskusage(10**9, 10**9, 0)
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda path: full)
    runs.check_writable("export_dir", str(tmp_path))


def test_a_new_lock_file_is_made_readable_by_all_and_writable_by_its_owner(options, located):
    """Catches the lock file created with other permissions than rw-r--r-- (the mode dropped:
    rwxrwxrwx; or 0o645), checked with no umask and the file made by `_lock` itself."""
    umask = os.umask(0)
    try:
        folder = located(options())
    finally:
        os.umask(umask)
    assert stat.S_IMODE((folder.resume / "lock").stat().st_mode) == 0o644
