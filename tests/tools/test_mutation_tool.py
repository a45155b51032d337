"""tools/mutation.py's choice of candidate tests (the part that decides what a row means)."""

import importlib.util
import pathlib

import pytest
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("mutation", ROOT / "tools" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_modules_own_test_module_and_the_named_ones_are_the_candidates(mutation):
    """Catches the own test module left out (or another module's taken), a package's
    `__init__.py` not mapped to its test folder, or --tests dropped."""
    modules = [pathlib.Path("tfnn/recipe/train.py"), pathlib.Path("tfnn/experiments/__init__.py")]
    extra = ["tests/recipe/test_stages.py"]
    assert mutation.candidate_tests(modules, extra, importers=False) == [
        "tests/experiments",
        "tests/recipe/test_stages.py",
        "tests/recipe/test_train.py",
    ]


def test_only_tests_takes_the_named_test_files_alone(mutation):
    """--only_tests: the named files only (a module whose own tests are whole runs is
    mutated against fast ones). Catches the own test module still added."""
    modules = [pathlib.Path("tfnn/recipe/train.py")]
    extra = ["tests/recipe/test_stages.py"]
    assert mutation.candidate_tests(modules, extra, importers=False, own=False) == extra


def test_only_tests_without_tests_is_refused_in_one_line(mutation, capsys):
    """Catches --only_tests with no --tests running no test at all (every mutant
    'survives'): exit 2, one line."""
    assert mutation.main(["tfnn/recipe/train.py", "--only_tests"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--only_tests needs --tests" in err


@pytest.mark.parametrize(
    "select, selection",
    [
        (None, ["tests/cli/test_train.py"]),
        ('a or "b"', ["tests/cli/test_train.py", "-k", 'a or "b"']),
    ],
)
def test_select_narrows_the_candidate_tests_and_survives_the_toml(mutation, select, selection):
    """Catches --select dropped or sent without pytest's -k, and a value written into
    pyproject.toml unescaped (a quote in a -k expression ended the TOML string)."""
    settings = mutation.mutmut_settings(
        [pathlib.Path("tfnn/cli/train.py")], ["tests/cli/test_train.py"], ["tests"], select=select
    )
    assert settings["pytest_add_cli_args_test_selection"] == selection
    assert settings["only_mutate"] == ["tfnn/cli/train.py"]
    text = "\n".join(f"{key} = {mutation._toml(value)}" for key, value in settings.items())
    assert tomllib.loads(text) == settings


@pytest.mark.parametrize("select", ["", "  "])
def test_an_empty_select_is_refused_in_one_line(mutation, capsys, select):
    """Catches an empty -k expression taken (it selects every test: no narrowing asked for
    would be said to be made)."""
    assert mutation.main(["tfnn/recipe/process.py", "--select", select]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"Received: --select {select!r}" in err
