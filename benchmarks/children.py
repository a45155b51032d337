"""Child processes of a benchmark: each one's wall time, peak RSS and CPU time, and what the
runs of train.py report (the JSON line, metrics.json's phases)."""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time


def run(command, name, cwd):
    """Runs `command` in `cwd`; returns (stdout, stderr, wall s, peak RSS MiB, CPU s), the
    last three of this child alone (os.wait4). Exits with its stderr if it fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = (f.read().decode(errors="replace") for f in (out, err))
    if returncode:
        sys.exit(f"{name} failed (exit {returncode}):\n{stderr[-3000:]}")
    return stdout, stderr, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def last_json(stdout):
    """The last line of `stdout` that is a JSON object."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def train_py(python, tree, flags, scratch, name="train.py", script=("train.py",)):
    """Runs `python train.py FLAGS` in `tree` (`script`: another command line taking train.py's
    flags), writing under `scratch`; returns {wall, rss, cpu, val, test, seconds} (seconds:
    metrics.json's phases, {} where it has none)."""
    command = [python, *script, *flags, "--logdir", f"{scratch}/logs"]
    command += ["--export_dir", f"{scratch}/exports"]
    stdout, _, wall, rss, cpu = run(command, name, tree)
    printed = last_json(stdout)
    metrics = json.loads((pathlib.Path(tree, printed["run"]) / "metrics.json").read_text())
    return dict(
        wall=wall,
        rss=rss,
        cpu=cpu,
        val=printed["val"],
        test=printed["test"],
        seconds=metrics.get("seconds", {}),
    )


def phase_table(columns):
    """Markdown rows of the median seconds per phase, one column per {name: [results]}."""
    names = list(columns)
    phases = []
    for results in columns.values():
        for result in results:
            phases += [p for p in result["seconds"] if p not in phases]
    lines = [f"| phase | {' | '.join(names)} |", "|---|" + "---:|" * len(names)]
    for phase in [*phases, "process (wall)"]:
        cells = []
        for results in columns.values():
            if phase == "process (wall)":
                values = [r["wall"] for r in results]
            else:
                values = [r["seconds"][phase] for r in results if phase in r["seconds"]]
            cells.append(f"{statistics.median(values):.2f}" if values else "–")
        lines.append(f"| {phase} | {' | '.join(cells)} |")
    return "\n".join(lines)
