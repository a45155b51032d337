"""What tfnn's command lines share: a parser whose errors are one line, and flag types that
check their values with `tfnn.validation` (so a flag and a keyword argument read alike).

No TensorFlow import: bad flags are refused before TensorFlow starts.
"""

import argparse
import functools

from tfnn import validation


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports an error as one line (no usage block), exits 2, and shows each
    flag's default in --help."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
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


port = checked(int, functools.partial(validation.integer, low=0, high=65535))
positive_int = checked(int, functools.partial(validation.integer, low=1))
non_negative_int = checked(int, functools.partial(validation.integer, low=0))
non_negative_float = checked(float, functools.partial(validation.number, low=0))
