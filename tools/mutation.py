"""Mutation testing of named tfnn modules with mutmut, on one core, with a per-module table.

    python tools/mutation.py tfnn/validation.py tfnn/recipe [--tests tests/x.py ...]
                             [--only_tests] [--workdir .mutation] [--markdown]

mutmut changes one thing at a time in the code (a `<` into `<=`, a constant into another, an
argument dropped, …) and runs the tests that cover the changed function; a change no test
notices "survives" and points at a missing test. This command:

1. copies the tracked tree into `--workdir` (default `.mutation/`, ignored by git) and writes
   mutmut's settings there: mutate only the named modules (a folder names every module in it);
2. chooses the candidate tests: each module's own test module (`tfnn/a/b.py` →
   `tests/a/test_b.py`, a package's `__init__.py` → `tests/a/`; not with `--only_tests`),
   plus `--tests`, plus with `--importers` every test file that imports the module by name
   (the integration tests: far slower, each mutant may train); mutmut runs them once to
   learn which test covers which function, then runs only those tests against each mutant;
3. runs mutmut on one core (`--max-children 1`); a test that runs tfnn in a process of its
   own runs the original code there, so it kills no mutant: what it covers needs an
   in-process test to count;
4. prints one row per module — mutants, killed, equivalent, survived, rate — and every
   survivor's changed line. A survivor that cannot be told apart from the original by any
   input is listed in `tools/mutation_equivalents.toml` with the reason; it counts as
   equivalent (rate = (killed + equivalent) / mutants). Mutants that time out count as
   killed (the change made the code loop); mutants no candidate test reaches count as
   survived ("no tests").

Exit status: 0 when it ran, 2 for a bad argument (one line), 1 when mutmut failed.
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "tools" / "mutation_equivalents.toml"
MUTMUT = Path(sys.executable).with_name("mutmut")
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def modules_of(paths):
    """The `.py` files the arguments name, as paths relative to the repository root."""
    files = []
    for given in paths:
        path = (ROOT / given).resolve()
        if not path.is_relative_to(ROOT / "tfnn") or not path.exists():
            raise ValueError(f"Expected a module or folder under tfnn/. Received: {given!r}")
        found = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        files += [f.relative_to(ROOT) for f in found if f.suffix == ".py"]
    return sorted(set(files))


def dotted(module_file):
    """tfnn/a/b.py → tfnn.a.b; tfnn/a/__init__.py → tfnn.a."""
    parts = module_file.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def candidate_tests(module_files, extra, importers, own=True):
    """Each module's own test module (`tfnn/a/b.py` → `tests/a/test_b.py`; a package's
    `__init__.py` → `tests/a/`) unless not `own`, `extra`, and with `importers` every test
    file that imports one of the modules by name."""
    tests = set(extra)
    test_files = sorted((ROOT / "tests").rglob("test_*.py"))
    for module_file in module_files:
        inside = module_file.parent.relative_to("tfnn")
        if module_file.name == "__init__.py":
            own_tests = ROOT / "tests" / inside
        else:
            own_tests = ROOT / "tests" / inside / f"test_{module_file.stem}.py"
        if own and own_tests.exists() and own_tests != ROOT / "tests":
            tests.add(str(own_tests.relative_to(ROOT)))
        if not importers:
            continue
        name = dotted(module_file)
        package, _, leaf = name.rpartition(".")
        imports = re.compile(
            rf"\b{re.escape(name)}\b|from {re.escape(package)} import [^\n]*\b{re.escape(leaf)}\b"
        )
        for test_file in test_files:
            if imports.search(test_file.read_text(encoding="utf-8")):
                tests.add(str(test_file.relative_to(ROOT)))
    return sorted(tests)


def prepare(workdir, module_files, tests, *, select=None):
    """The tracked tree copied into `workdir`, with mutmut's settings in its pyproject.toml."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    if workdir.exists():
        shutil.rmtree(workdir)
    for name in tracked:
        target = workdir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    top = sorted({Path(name).parts[0] for name in tracked} - {"tfnn"})
    settings = mutmut_settings(module_files, tests, top, select=select)
    lines = ["", "[tool.mutmut]"] + [f"{key} = {_toml(value)}" for key, value in settings.items()]
    with open(workdir / "pyproject.toml", "a", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")


def mutmut_settings(module_files, tests, also_copy, *, select=None):
    """mutmut's settings: mutate `module_files`, copy the `also_copy` folders and files beside
    them, run the candidate `tests` (only those whose names match pytest's `-k select`)."""
    return {
        "source_paths": ["tfnn"],
        "only_mutate": [str(f) for f in module_files],
        "also_copy": also_copy,
        "pytest_add_cli_args_test_selection": [*tests, *([] if select is None else ["-k", select])],
        # mutmut_signatures (tools/, on the runs' PYTHONPATH): trampolines keep their
        # functions' argument lists, which Keras reads from every layer's __init__.
        # pytest-xdist stays loaded (without -n it runs nothing in other processes): the
        # project's addopts pass its --dist option, which pytest refuses without it.
        "pytest_add_cli_args": [
            "-p",
            "no:cacheprovider",
            "-p",
            "mutmut_signatures",
            "-q",
        ],
        # A child forked from a process whose TensorFlow has run can wait forever on the
        # parent's thread pools: fork each mutant's process from a server that has only
        # collected the tests (imported TensorFlow, run no op).
        "process_isolation": "forkserver",
        "forkserver_warmup": "collect",
    }


def _toml(value):
    """A string or a list of strings in TOML (JSON's string escapes are TOML's)."""
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(json.dumps(item) for item in value) + "]"


def statuses(workdir, env):
    """{mutant name: status} from `mutmut results --all true`."""
    out = subprocess.run(
        [MUTMUT, "results", "--all", "true"],
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pairs = (line.strip().rsplit(": ", 1) for line in out.splitlines() if ": " in line)
    return {name: status for name, status in pairs}


def changed_lines(workdir, env, mutant):
    """The mutant's lines as mutmut shows them in its diff ('+' lines), stripped."""
    out = subprocess.run(
        [MUTMUT, "show", mutant], cwd=workdir, env=env, check=True, capture_output=True, text=True
    ).stdout
    return "\n".join(
        line[1:].strip()
        for line in out.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    )


def function_of(mutant):
    """('tfnn.a.b', 'fn') of 'tfnn.a.b.x_fn__mutmut_3'; methods as 'Class.method'."""
    module, _, mangled = mutant.rpartition(".")
    name = re.sub(r"__mutmut_\d+$", "", mangled)
    name = name[2:] if name.startswith("x_") else name.removeprefix("x")
    return module.removesuffix(".__init__"), name.strip("ǁ").replace("ǁ", ".")


def equivalents():
    """{(module, function, mutated line): reason} from tools/mutation_equivalents.toml."""
    if not EQUIVALENTS.exists():
        return {}
    entries = tomllib.loads(EQUIVALENTS.read_text(encoding="utf-8")).get("equivalent", [])
    return {(e["module"], e["function"], e["mutated"].strip()): e["reason"] for e in entries}


def table(results, known, workdir, env):
    """Rows (module, mutants, killed, equivalent, survived, rate) and the survivors' lines."""
    counts = collections.defaultdict(collections.Counter)
    survivors = []
    for mutant, status in sorted(results.items()):
        module, function = function_of(mutant)
        row = counts[module]
        row["mutants"] += 1
        if status in KILLED:
            row["killed"] += 1
            continue
        line = changed_lines(workdir, env, mutant)
        if (module, function, line) in known:
            row["equivalent"] += 1
        else:
            row["survived"] += 1
            survivors.append((mutant, status, function, line))
    rows = []
    for module in sorted(counts):
        row = counts[module]
        rate = (row["killed"] + row["equivalent"]) / row["mutants"]
        rows.append(
            (module, row["mutants"], row["killed"], row["equivalent"], row["survived"], rate)
        )
    return rows, survivors


def show(rows, survivors, markdown):
    total = [sum(row[i] for row in rows) for i in range(1, 5)]
    overall = (total[1] + total[2]) / total[0] if total[0] else 0.0
    head = ("module", "mutants", "killed", "equivalent", "survived", "rate")
    body = [(*row[:5], f"{row[5]:.1%}") for row in rows]
    body.append(("all", *total, f"{overall:.1%}"))
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in body:
            print("| " + " | ".join(str(cell) for cell in row) + " |")
    else:
        for row in [head, *body]:
            print(f"{row[0]:<32}" + "".join(f"{cell!s:>11}" for cell in row[1:]))
    for mutant, status, function, line in survivors:
        print(f"{status}: {mutant} ({function}): {line}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="+", help="modules or folders under tfnn/")
    parser.add_argument("--tests", nargs="*", default=[], help="more candidate test files")
    parser.add_argument(
        "--only_tests",
        action="store_true",
        help="the --tests files alone, without the modules' own test modules (when those are "
        "whole runs, too slow to run for each mutant)",
    )
    parser.add_argument(
        "--importers",
        action="store_true",
        help="also every test file that imports a named module (slower: integration tests)",
    )
    parser.add_argument(
        "--select",
        help="only the candidate tests matching this pytest -k expression (to leave out tests "
        "that run tfnn in a child process: they see no mutant, and mutmut's first run fails "
        "in them)",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / ".mutation")
    parser.add_argument("--markdown", action="store_true", help="the table as Markdown")
    args = parser.parse_args(argv)
    try:
        module_files = modules_of(args.modules)
        for test in args.tests:
            if not (ROOT / test).is_file():
                raise ValueError(f"Expected a test file. Received: --tests {test!r}")
        if args.select is not None and not args.select.strip():
            raise ValueError(f"Expected a pytest -k expression. Received: --select {args.select!r}")
        if args.only_tests and not args.tests:
            raise ValueError("--only_tests needs --tests: the test files to run")
    except ValueError as error:
        print(f"mutation.py: {error}", file=sys.stderr)
        return 2
    workdir = args.workdir.resolve()
    tests = candidate_tests(module_files, args.tests, args.importers, own=not args.only_tests)
    if not tests:
        print(
            "mutation.py: no test module for these modules; name some with --tests", file=sys.stderr
        )
        return 2
    prepare(workdir, module_files, tests, select=args.select)
    path = os.pathsep.join(filter(None, [str(ROOT / "tools"), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=path)
    run = subprocess.run(
        [MUTMUT, "run", "--max-children", "1"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if run.returncode != 0:
        print(f"mutation.py: mutmut failed: {run.stderr.strip()[-2000:]}", file=sys.stderr)
        return 1
    rows, survivors = table(statuses(workdir, env), equivalents(), workdir, env)
    show(rows, survivors, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
