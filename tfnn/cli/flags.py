"""What tfnn's command lines share: a parser whose errors are one line, and flag types that
check their values with `tfnn.validation` (so a flag and a keyword argument read alike).

No TensorFlow import: bad flags are refused before TensorFlow starts.
"""

import argparse
import contextlib
import functools
import logging
import sys

from tfnn import validation


class DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default after its help, unless the flag is required or its help says
    the default in its own words ("(default: one a CPU)"): no help reads "(default: …)
    (default: None)"."""

    def _get_help_string(self, action):
        if action.required or "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports an error as one line (no usage block), exits 2, and shows each
    flag's default in --help."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsShown)
        super().__init__(**kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def checked(kind, check):
    """An argparse type: `kind(text)`, then `check("value", number)` of `tfnn.validation`."""

    def parse(text):
        value = kind(text)  # a ValueError here is argparse's "invalid int value: 'x'"
        try:
            return check("value", value)
        except ValueError as error:
            message = str(error).replace("Received: value=", "Received: ")
            raise argparse.ArgumentTypeError(message) from None

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def boolean(text):
    """An argparse type for a switch written as TensorFlow Serving's flags are:
    `--flag=true` or `--flag=false` (also 1 or 0, in any case)."""
    value = {"true": True, "1": True, "false": False, "0": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"Expected true or false (or 1, 0). Received: {text!r}")
    return value


port = checked(int, functools.partial(validation.integer, low=0, high=65535))
positive_int = checked(int, functools.partial(validation.integer, low=1))
non_negative_int = checked(int, functools.partial(validation.integer, low=0))
non_negative_float = checked(float, functools.partial(validation.number, low=0))


class _Lines(logging.Handler):
    """The recipe's log lines on stderr as `<prog>: message`, through tqdm when it is there
    so that a progress bar stays below them."""

    def __init__(self, prog):
        super().__init__(logging.INFO)
        self.prog = prog

    def emit(self, record):
        line = f"{self.prog}: {record.getMessage()}"
        try:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)
        except ImportError:
            print(line, file=sys.stderr)  # stderr is line-buffered: the line is written now


@contextlib.contextmanager
def print_log_lines(prog):
    """While inside, prints tfnn's log lines (the recipe's progress, the pool's items) as
    `prog: ...`; the logger is as it was afterwards, so a library call after a command's
    `main()` in the same process prints nothing."""
    logger = logging.getLogger("tfnn")
    handler, level, propagate = _Lines(prog), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed once, here, whatever the root logger does
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
