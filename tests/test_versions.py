"""A version number, as TensorFlow Serving reads a version folder's name: ASCII decimal digits
with a value within int64; the export and the server both read names with this one parser."""

import pytest

from tfnn.versions import MAX_VERSION, parse_version


@pytest.mark.parametrize(
    "text, version",
    [
        ("0", 0),
        ("1", 1),
        ("12", 12),
        ("0012", 12),  # leading zeros: the int64 it spells, as TF Serving parses it
        ("00", 0),
        ("0" * 30 + "7", 7),  # however many
        (str(2**63 - 1), 2**63 - 1),  # the int64 maximum
        ("0" + str(2**63 - 1), 2**63 - 1),
    ],
)
def test_ascii_decimal_digits_within_int64_are_a_version(text, version):
    assert parse_version(text) == version


@pytest.mark.parametrize(
    "text",
    [
        str(2**63),  # one past the int64 maximum
        "0" + str(2**63),
        "9" * 5000,  # longer than int() converts
        "",
        "\u0661\u0662",  # Arabic-Indic twelve
        "\u00b2",  # superscript two
        "\uff11",  # fullwidth one
        "-1",
        "+1",
        "-0",
        " 1",
        "1 ",
        "1_000",
        "1.0",
        "v2",
        "0x1",
    ],
)
def test_anything_else_is_not_a_version(text):
    assert parse_version(text) is None


def test_the_maximum_is_int64s():
    assert MAX_VERSION == 2**63 - 1
