import pathlib

import numpy as np
import pytest

from tfnn import validation


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: validation.integer("units", 0, low=1),
            "Expected an integer >= 1. Received: units=0",
        ),
        (lambda: validation.integer("units", True, low=1), "Received: units=True"),
        (lambda: validation.integer("units", 2.0), "Expected an integer. Received: units=2.0"),
        (
            lambda: validation.number("rate", 1.0, low=0, high=1, high_open=True),
            "Expected a finite number in [0, 1). Received: rate=1.0",
        ),
        (
            lambda: validation.number("c", 0, low=0, low_open=True),
            "Expected a finite number > 0. Received: c=0",
        ),
        (lambda: validation.number("x", float("inf")), "Received: x=inf"),
        (lambda: validation.number("x", "0.1"), "Received: x='0.1'"),
        (lambda: validation.one_of("mode", "max", ("a", "b")), "Expected one of 'a', 'b'."),
        (
            lambda: validation.integers("kernel", (3, 0), low=1, length=2),
            "Expected 2 integers >= 1. Received: kernel=(3, 0)",
        ),
        (lambda: validation.integers("axes", "12"), "Received: axes='12'"),
        (lambda: validation.integers("axes", ()), "Received: axes=()"),
    ],
)
def test_refusals_read_as_keras_does(call, message):
    with pytest.raises(ValueError) as raised:
        call()
    assert message in str(raised.value) and str(raised.value).startswith("Expected ")


def test_bounds_are_closed_unless_said_open_and_values_come_back_normalized():
    assert validation.number("p", 0, low=0, high=1) == 0.0
    assert validation.number("p", 1, low=0, high=1) == 1.0
    assert isinstance(validation.number("p", np.float32(0.5)), float)
    assert validation.integer("n", np.int64(3), low=3, high=3) == 3
    assert validation.integers("k", 3, low=1, length=2, single=True) == (3, 3)
    assert validation.integers("k", [1, 2]) == (1, 2)
    assert validation.one_of("m", "a", ("a",)) == "a"
    with pytest.raises(ValueError):
        validation.one_of("flag", True, (1, 0))  # True == 1, but a bool is not a choice


@pytest.mark.parametrize(
    "call, message",
    [
        # Each interval form, whole: catches a bracket, a comparison sign or a bound dropped.
        (lambda: validation.integer("n", 5, low=1, high=4), "an integer in [1, 4]. Received: n=5"),
        (lambda: validation.integer("n", 0, low=1, high=4), "an integer in [1, 4]. Received: n=0"),
        (
            lambda: validation.number("p", 2, low=0, high=1),
            "a finite number in [0, 1]. Received: p=2",
        ),
        (
            lambda: validation.number("p", 0, low=0, high=1, low_open=True, high_open=True),
            "a finite number in (0, 1). Received: p=0",
        ),
        (lambda: validation.number("p", 2, high=1), "a finite number <= 1. Received: p=2"),
        (
            lambda: validation.number("p", 1, high=1, high_open=True),
            "a finite number < 1. Received: p=1",
        ),
        (lambda: validation.number("x", float("nan")), "a finite number. Received: x=nan"),
        (
            lambda: validation.one_of("mode", "max", ("a", "b")),
            "one of 'a', 'b'. Received: mode='max'",
        ),
        (lambda: validation.integers("axes", "12"), "a sequence of integers. Received: axes='12'"),
        # A bytes object iterates as ints: it is still not a sequence of integers.
        (
            lambda: validation.integers("axes", b"\x01"),
            "a sequence of integers. Received: axes=b'\\x01'",
        ),
        # Without `single`, one int is not a sequence.
        (lambda: validation.integers("axes", 3), "a sequence of integers. Received: axes=3"),
        (
            lambda: validation.integers("k", "x", single=True),
            "an integer or a sequence of integers. Received: k='x'",
        ),
        (
            lambda: validation.integers("k", 0, low=1, length=2, single=True),
            "an integer >= 1 or 2 integers >= 1. Received: k=(0, 0)",
        ),
        (
            lambda: validation.integers("k", (1, 2, 3), length=2),
            "2 integers. Received: k=(1, 2, 3)",
        ),
    ],
)
def test_each_refusal_reads_exactly(call, message):
    with pytest.raises(ValueError) as raised:
        call()
    assert str(raised.value) == f"Expected {message}"


def test_limits_themselves_are_accepted_unless_open():
    assert validation.integer("n", 4, low=1, high=4) == 4
    assert validation.integers("k", (1,), low=1) == (1,)  # at `low`: catches `>` for `>=`
    assert validation.integers("k", 3, single=True) == (3,)  # one copy when no length is given
    assert validation.number("p", 0.5, low=0, high=1, low_open=True, high_open=True) == 0.5


@pytest.mark.parametrize("axes", [3, -4, [0, 3], (-4,)])
def test_axes_beyond_the_rank_are_refused(axes):
    """Catches a bound off by one: axes of a rank-3 tensor run from −3 to 2."""
    with pytest.raises(ValueError, match=r"rank 3, from -3 to 2\. Received: axis="):
        validation.axes("axis", axes, 3)


@pytest.mark.parametrize("axes", [2, -3, [0, -1], (1,)])
def test_axes_within_the_rank_are_returned(axes):
    assert validation.axes("axis", axes, 3) is axes


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "Expected a non-empty path. Received: out=''"),
        (3, "Expected a non-empty path. Received: out=3"),
        (b"runs", "Expected a non-empty path. Received: out=b'runs'"),
    ],
)
def test_a_path_is_refused_empty_or_not_text(value, message):
    """Catches the empty text taken (the default folder, or the current one, written into),
    bytes or a number passed on as a path."""
    with pytest.raises(ValueError) as raised:
        validation.path("out", value)
    assert str(raised.value) == message


def test_a_path_comes_back_as_its_text_and_says_what_else_it_may_be():
    """Catches a PathLike returned as is (the options keep text, os.fspath), a one-character
    path refused (the limit: one character is a path), or `what` not in the message."""
    assert validation.path("out", pathlib.Path("a/b")) == "a/b"
    assert validation.path("out", "x") == "x"
    with pytest.raises(ValueError, match=r"^Expected a non-empty path or name\. Received: d=''$"):
        validation.path("d", "", what="a non-empty path or name")
