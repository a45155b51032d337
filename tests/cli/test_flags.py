"""tfnn.cli.flags: the one-line parser, the checked flag types at their limits, the boolean
switch, and the log lines a command prints while it runs."""

import argparse
import builtins
import logging
import sys

import pytest

from tfnn.cli import flags


def test_an_error_is_one_line_naming_the_program_with_status_2(capsys):
    """Catches argparse's usage block and status kept, or the program's name left out."""
    parser = flags.OneLineParser(prog="tool")
    parser.add_argument("--n", type=int, required=True)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args([])
    assert exited.value.code == 2
    assert capsys.readouterr().err == "tool: error: the following arguments are required: --n\n"


def test_help_shows_each_default_unless_required_or_said_in_the_help(capsys):
    """Catches the defaults not shown, shown for a required flag, or shown twice where the
    help says its default in its own words."""
    parser = flags.OneLineParser(prog="tool")
    parser.add_argument("--plain", default=3, help="a number")
    parser.add_argument("--worded", default=None, help="workers (default: one a CPU)")
    parser.add_argument("--needed", required=True, default=argparse.SUPPRESS, help="a path")
    text = " ".join(parser.format_help().split())
    assert "a number (default: 3)" in text
    assert "workers (default: one a CPU)" in text and "(default: None)" not in text
    assert "a path (default" not in text
    assert parser.formatter_class is flags.DefaultsShown


def test_a_parsers_own_formatter_is_kept():
    """Catches the formatter forced rather than a default the caller may replace."""
    parser = flags.OneLineParser(prog="t", formatter_class=argparse.RawTextHelpFormatter)
    assert parser.formatter_class is argparse.RawTextHelpFormatter


@pytest.mark.parametrize(
    "kind, taken, refused, allowed",
    [
        (flags.port, ["0", "65535"], ["-1", "65536"], "an integer in [0, 65535]"),
        (flags.positive_int, ["1", "7"], ["0", "-3"], "an integer >= 1"),
        (flags.non_negative_int, ["0", "9"], ["-1"], "an integer >= 0"),
        (flags.non_negative_float, ["0", "0.5", "2"], ["-0.001"], "a finite number >= 0"),
    ],
)
def test_each_checked_type_takes_its_limits_and_refuses_one_past(kind, taken, refused, allowed):
    """Catches a limit moved or dropped (the value at it taken, the one past refused), the
    value returned as text, and the refusal not in tfnn.validation's words."""
    for text in taken:
        value = kind(text)
        assert value == float(text) and not isinstance(value, str)
    for text in refused:
        with pytest.raises(argparse.ArgumentTypeError) as error:
            kind(text)
        received = float(text) if kind is flags.non_negative_float else int(text)
        assert str(error.value) == f"Expected {allowed}. Received: {received}"


def test_a_new_checked_type_parses_checks_and_refuses_in_validations_words():
    """Catches `checked` (the types above are made when the module is imported, so these
    catch only what a type made now does): the text not parsed by `kind`, the value or the
    name not passed to the check, the message's "Received: value=" not shortened."""
    calls = []

    def check(name, value):
        calls.append((name, value))
        if value > 5:
            raise ValueError(f"Expected at most 5. Received: {name}={value}")
        return value

    parse = flags.checked(int, check)
    assert parse("4") == 4 and calls == [("value", 4)]
    with pytest.raises(argparse.ArgumentTypeError) as error:
        parse("6")
    assert str(error.value) == "Expected at most 5. Received: 6"
    with pytest.raises(ValueError, match="invalid literal for int"):
        parse("six")  # argparse turns this one into "invalid int value: 'six'"
    assert parse.__name__ == "int" and flags.checked(float, check).__name__ == "float"


def test_checked_types_are_named_by_their_kind_for_argparses_message(capsys):
    """Catches the type's name not its kind's: argparse says "invalid int value: 'x'"."""
    assert flags.port.__name__ == "int" and flags.non_negative_float.__name__ == "float"
    parser = flags.OneLineParser(prog="tool")
    parser.add_argument("--port", type=flags.port)
    with pytest.raises(SystemExit):
        parser.parse_args(["--port", "x"])
    assert capsys.readouterr().err == "tool: error: argument --port: invalid int value: 'x'\n"


@pytest.mark.parametrize(
    "text, value",
    [("true", True), ("TRUE", True), ("True", True), ("1", True)]
    + [("false", False), ("FALSE", False), ("False", False), ("0", False)],
)
def test_boolean_reads_true_and_false_in_any_case_and_1_and_0(text, value):
    """Catches a spelling read as the other value, or case taken into account."""
    assert flags.boolean(text) is value


@pytest.mark.parametrize("text", ["yes", "no", "", "2", "-1", "tru", "falsey", " true"])
def test_boolean_refuses_anything_else_naming_it(text):
    """Catches another word taken for its truth (any non-empty text is true in Python)."""
    with pytest.raises(argparse.ArgumentTypeError) as error:
        flags.boolean(text)
    assert str(error.value) == f"Expected true or false (or 1, 0). Received: {text!r}"


@pytest.fixture
def tfnn_logger():
    logger = logging.getLogger("tfnn")
    before = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    assert (list(logger.handlers), logger.level, logger.propagate) == before


def test_log_lines_are_printed_with_the_programs_name_while_inside(tfnn_logger, capsys):
    """Catches the lines not printed, printed without the program's name, printed twice (the
    record also propagated to the root logger's handlers), or still printed afterwards."""
    root = logging.getLogger()
    caught = []
    handler = logging.Handler()
    handler.emit = caught.append
    root.addHandler(handler)
    try:
        with flags.print_log_lines("tool"):
            logging.getLogger("tfnn.recipe").info("member 1: trained")
            logging.getLogger("tfnn.recipe").debug("not shown")
        logging.getLogger("tfnn.recipe").warning("after the block")
    finally:
        root.removeHandler(handler)
    err = capsys.readouterr().err
    assert "tool: member 1: trained\n" in err and "not shown" not in err
    assert "tool: after the block" not in err
    assert [r.getMessage() for r in caught] == ["after the block"]


def test_the_logger_is_restored_when_the_block_fails(tfnn_logger):
    """Catches the handler, level or propagation left changed after an exception."""
    tfnn_logger.setLevel(logging.WARNING)
    with pytest.raises(RuntimeError), flags.print_log_lines("tool"):
        assert tfnn_logger.level == logging.INFO and tfnn_logger.propagate is False
        raise RuntimeError
    assert tfnn_logger.level == logging.WARNING
    tfnn_logger.setLevel(logging.NOTSET)


def test_lines_go_through_tqdm_so_a_progress_bar_stays_below(monkeypatch):
    """Catches the lines printed past tqdm (which then draws its bar over them)."""
    written = []
    import tqdm

    monkeypatch.setattr(tqdm.tqdm, "write", lambda line, file: written.append((line, file)))
    flags._Lines("tool").emit(logging.makeLogRecord({"msg": "a %s", "args": ("line",)}))
    assert written == [("tool: a line", sys.stderr)]


def test_lines_are_printed_and_flushed_without_tqdm(monkeypatch, capsys):
    """Catches a failure where tqdm is not installed: the line is printed to stderr."""
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    handler = flags._Lines("tool")
    assert handler.level == logging.INFO
    handler.emit(logging.makeLogRecord({"msg": "plain"}))
    assert capsys.readouterr().err == "tool: plain\n"
