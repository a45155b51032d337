"""Argument checks with one message form, Keras's: "Expected <what>. Received: <name>=<value>".

The layers, losses, callbacks, the recipe's options and the command lines all
check their arguments here, so a bad value reads the same wherever it is
caught. Each check returns the value (normalized: an int stays an int, a
number becomes a float) or raises `ValueError`. No TensorFlow import: the
command lines check their flags before TensorFlow starts.
"""

import math as _math
import numbers as _numbers
import os as _os

__all__ = ["axes", "fail", "integer", "integers", "number", "one_of", "path"]


def fail(name, value, expected, error=ValueError):
    """Raises `error` (a ValueError): "Expected {expected}. Received: {name}={value!r}"."""
    raise error(f"Expected {expected}. Received: {name}={value!r}")


def _bounds(low, high, low_open=False, high_open=False):
    """ "in [0, 1)", "> 0", ">= 1", "<= 5" or "" for the interval."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def _within(value, low, high, low_open=False, high_open=False):
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    return above and below


def integer(name, value, *, low=None, high=None):
    """`value` as an int within [low, high]; booleans and floats are refused."""
    ok = isinstance(value, _numbers.Integral) and not isinstance(value, bool)
    if not ok or not _within(value, low, high):
        fail(name, value, f"an integer {_bounds(low, high)}".rstrip())
    return int(value)


def number(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """`value` as a finite float within the interval (closed unless said open); not a bool."""
    ok = isinstance(value, _numbers.Real) and not isinstance(value, bool)
    ok = ok and _math.isfinite(value) and _within(value, low, high, low_open, high_open)
    if not ok:
        fail(name, value, f"a finite number {_bounds(low, high, low_open, high_open)}".rstrip())
    return float(value)


def one_of(name, value, choices):
    """`value` if it is one of `choices`."""
    if isinstance(value, bool) or value not in tuple(choices):
        fail(name, value, f"one of {', '.join(map(repr, choices))}")
    return value


def path(name, value, *, what="a non-empty path"):
    """`value`'s text (`os.fspath`) if it is a non-empty str or an os.PathLike: the empty text
    would be taken for a default or for the current folder."""
    if isinstance(value, _os.PathLike):
        value = _os.fspath(value)
    if not isinstance(value, str) or not value:
        fail(name, value, what)
    return value


def axes(name, axes, rank):
    """`axes` (an int or a sequence of ints), each an axis of a rank-`rank` tensor: within
    [−rank, rank). TensorFlow would fail later, or wrap a modulo, silently."""
    for axis in [axes] if isinstance(axes, _numbers.Integral) else axes:
        if not -rank <= axis < rank:
            fail(name, axes, f"axes of the input's rank {rank}, from {-rank} to {rank - 1}")
    return axes


def integers(name, values, *, low=None, length=None, single=False):
    """A sequence of ints, each >= `low` (and exactly `length` of them if given), as a tuple;
    with `single`, one int stands for a sequence of `length` (or 1) copies of it."""
    if single and isinstance(values, _numbers.Integral) and not isinstance(values, bool):
        values = (values,) * (length or 1)
    bounds = _bounds(low, None)
    described = f"{length or 'a sequence of'} integers {bounds}".rstrip()
    if single:
        described = f"an integer {bounds} or {described}".replace("  ", " ")
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        fail(name, values, described)
    items = tuple(values)
    if (
        not items
        or (length is not None and len(items) != length)
        or not all(
            isinstance(v, _numbers.Integral) and not isinstance(v, bool) and _within(v, low, None)
            for v in items
        )
    ):
        fail(name, values, described)
    return tuple(int(v) for v in items)
