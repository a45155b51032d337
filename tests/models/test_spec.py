import subprocess
import sys

import pytest

from tfnn.models import spec


def test_parses_every_kind_of_layer():
    layers = spec.parse(
        "C-16-5-1-same,CB-32-3-2-valid,M-2-2,A-3-1,R-[C-16-3-1-same,D-0.1],G,F,H-100,D-0.3"
    )
    assert layers == [
        spec.Conv(16, 5, 1, "same", batch_norm=False),
        spec.Conv(32, 3, 2, "valid", batch_norm=True),
        spec.Pool("max", 2, 2),
        spec.Pool("average", 3, 1),
        spec.Residual((spec.Conv(16, 3, 1, "same", batch_norm=False), spec.Dropout(0.1))),
        spec.GlobalPool(),
        spec.Flatten(),
        spec.Hidden(100),
        spec.Dropout(0.3),
    ]


def test_residual_blocks_nest():
    (outer,) = spec.parse("R-[C-8-3-1-same,R-[C-8-3-1-same,C-8-3-1-same]]")
    assert isinstance(outer.layers[1], spec.Residual) and len(outer.layers[1].layers) == 2


@pytest.mark.parametrize(
    "bad, quoted",
    [
        ("C-16-5-x-same", "'C-16-5-x-same'"),
        ("C-16-5-1", "'C-16-5-1'"),
        ("C-16-5-1-full", "'C-16-5-1-full'"),
        ("C-0-5-1-same", "'C-0-5-1-same'"),
        ("M-2", "'M-2'"),
        ("H-100,D-1.5", "'D-1.5'"),
        ("F-3", "'F-3'"),
        ("G-2", "'G-2'"),
        ("Q-3", "'Q-3'"),
        ("R-C-16-3-1-same", "'R-C-16-3-1-same'"),
        ("R-[]", "'R-[]'"),
        ("R-[C-16-3-1-same", "unmatched '['"),
        ("C-16-3-1-same]", "unmatched ']'"),
        ("", "non-empty"),
    ],
)
def test_a_malformed_spec_names_the_offending_part(bad, quoted):
    with pytest.raises(spec.SpecError, match=quoted.replace("[", r"\[").replace("]", r"\]")):
        spec.parse(bad)


def test_parsing_needs_no_tensorflow():
    script = (
        "import sys\nfrom tfnn.models import spec\n"
        "spec.parse('C-8-3-1-same,F')\nprint('tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_every_layer_prints_as_its_spec_term():
    text = "CB-16-5-1-same,C-8-3-2-valid,M-2-2,A-3-1,R-[C-16-3-1-same,D-0.1],G,F,H-100,D-0.3"
    assert ",".join(map(spec.term, spec.parse(text))) == text


@pytest.mark.parametrize(
    "text, example, expected",
    [
        # 'same': ceil(n / stride), whatever the kernel
        ("C-4-3-1-same", (8, 8, 1), (8, 8, 4)),
        ("C-4-5-2-same", (7, 8, 1), (4, 4, 4)),
        ("C-4-9-3-same", (1, 1, 1), (1, 1, 4)),
        # 'valid': floor((n - kernel) / stride) + 1
        ("C-4-3-1-valid", (8, 8, 1), (6, 6, 4)),
        ("C-4-3-2-valid", (8, 7, 1), (3, 3, 4)),
        ("C-4-8-1-valid", (8, 8, 1), (1, 1, 4)),  # the kernel covers the input: 1 position
        ("M-3-2", (8, 8, 3), (3, 3, 3)),  # pooling keeps the channels, pads 'valid'
        ("A-2-3", (8, 8, 3), (3, 3, 3)),
        ("M-8-8", (8, 8, 1), (1, 1, 1)),
        # signals: [T] gains a channel; [T, C] keeps its own
        ("C-4-5-1-valid", (40,), (36, 4)),
        ("M-2-2,C-4-3-2-same", (40, 3), (10, 4)),
        ("C-4-5-4-valid,M-9-1", (40,), (1, 4)),
        ("R-[C-1-3-1-same,D-0.5],G", (40,), (1,)),
        ("C-8-3-1-same,R-[C-8-3-1-same,R-[CB-8-3-1-same]],F", (5, 5, 1), (200,)),
        ("C-8-3-1-same,H-6", (5, 5, 1), (5, 5, 6)),  # Dense acts on the last axis
        ("C-8-3-1-same,G,H-6,D-0.1", (5, 5, 1), (6,)),
    ],
)
def test_output_shape_follows_the_padding_formulas(text, example, expected):
    assert spec.output_shape(spec.parse(text), example) == expected


@pytest.mark.parametrize(
    "text, example, message",
    [
        ("C-4-9-1-valid", (8, 8, 1), "layer 1 'C-4-9-1-valid' maps shape (8, 8, 1) to (0, 0, 4)"),
        ("C-4-9-1-valid", (8, 9, 1), "layer 1 'C-4-9-1-valid' maps shape (8, 9, 1) to (0, 1, 4)"),
        ("M-8-8,M-8-8", (8, 8, 1), "layer 2 'M-8-8' maps shape (1, 1, 1) to (0, 0, 1)"),
        (
            "C-8-3-1-same,M-8-8,M-8-8,F",
            (8, 8, 1),
            "layer 3 'M-8-8' maps shape (1, 1, 8) to (0, 0, 8)",
        ),
        ("A-41-1", (40,), "layer 1 'A-41-1' maps shape (40, 1) to (0, 1)"),
        ("C-4-5-4-valid,M-10-1", (40, 2), "layer 2 'M-10-1' maps shape (9, 4) to (0, 4)"),
        (
            "C-8-3-1-same,R-[C-8-3-1-same,M-8-8]",
            (5, 5, 1),
            "layer 2.2 'M-8-8' maps shape (5, 5, 8) to (0, 0, 8)",
        ),
        (
            "C-8-3-1-same,R-[C-16-3-1-same]",
            (40,),
            "layer 2 'R-[C-16-3-1-same]' maps shape (40, 8) to (40, 16); a residual block",
        ),
        (
            "R-[M-2-2]",
            (8, 8, 1),
            "layer 1 'R-[M-2-2]' maps shape (8, 8, 1) to (4, 4, 1); a residual block",
        ),
        ("F,C-8-3-1-same", (8, 8, 1), "layer 2 'C-8-3-1-same' needs spatial axes; shape (64,)"),
        ("G,M-2-2", (40,), "layer 2 'M-2-2' needs spatial axes; shape (1,)"),
        ("H-4,G,G", (40,), "layer 3 'G' needs spatial axes; shape (4,)"),
    ],
)
def test_a_layer_past_the_input_is_refused_naming_it_and_its_shape(text, example, message):
    with pytest.raises(spec.SpecError) as error:
        spec.output_shape(spec.parse(text), example)
    assert message in str(error.value)


USAGE_C = "C-filters-kernel-stride-padding: positive ints, padding valid or same (C-16-5-1-same)"
USAGE_R = "R-[layers] with a non-empty comma-separated list inside the brackets"


@pytest.mark.parametrize(
    "bad, message",
    [
        ("C-16-5-x-same", f"'C-16-5-x-same': expected {USAGE_C}"),
        ("C-16-5-1", f"'C-16-5-1': expected {USAGE_C}"),
        ("M-2-0", "'M-2-0': expected M-pool-stride with positive ints (e.g. M-2-2)"),
        ("M-x-2", "'M-x-2': expected M-pool-stride with positive ints (e.g. M-2-2)"),
        ("A-2", "'A-2': expected A-pool-stride with positive ints (e.g. A-2-2)"),
        ("H-0", "'H-0': expected H-units with a positive int (e.g. H-100)"),
        ("H-1-2", "'H-1-2': expected H-units with a positive int (e.g. H-100)"),
        ("D-x", "'D-x': expected D-rate with a rate in [0, 1) (e.g. D-0.3)"),
        ("D-1", "'D-1': expected D-rate with a rate in [0, 1) (e.g. D-0.3)"),
        ("D--0.1", "'D--0.1': expected D-rate with a rate in [0, 1) (e.g. D-0.3)"),
        ("F-3", "'F-3': expected F alone"),
        # digits of other scripts, which int() and float() read (٣ as 3): ASCII digits only
        ("C-٣-3-1-same", f"'C-٣-3-1-same': expected {USAGE_C}"),
        ("H-١٠", "'H-١٠': expected H-units with a positive int (e.g. H-100)"),
        ("M-２-2", "'M-２-2': expected M-pool-stride with positive ints (e.g. M-2-2)"),
        ("D-٠.٣", "'D-٠.٣': expected D-rate with a rate in [0, 1) (e.g. D-0.3)"),
        ("R-[]", f"'R-[]': expected {USAGE_R}"),
        ("R-[C-8-3-1-same]M-2-2", f"'R-[C-8-3-1-same]M-2-2': expected {USAGE_R}"),
        ("R-M-2-2[G]", f"'R-M-2-2[G]': expected {USAGE_R}"),
        # every layer the parser knows, G (global average pooling) included
        ("Q-3", "'Q-3': unknown layer 'Q'; expected one of C, CB, M, A, R, F, G, H, D"),
    ],
)
def test_a_malformed_part_is_quoted_with_its_usage(bad, message):
    with pytest.raises(spec.SpecError) as error:
        spec.parse(bad)
    assert str(error.value) == message


def test_limits_of_the_dropout_rate_and_the_residual_brackets():
    """A rate of 0 is allowed, 1 is not (above); the shortest block holds one letter."""
    assert spec.parse("D-0") == [spec.Dropout(0.0)]
    assert spec.parse("R-[G]") == [spec.Residual((spec.GlobalPool(),))]


def test_spaces_anywhere_are_ignored():
    assert spec.parse(" C - 16 - 5 - 1 - same , R-[ M-2-2 , D-0.1 ] ") == spec.parse(
        "C-16-5-1-same,R-[M-2-2,D-0.1]"
    )


def test_the_shape_errors_in_full():
    with pytest.raises(spec.SpecError) as error:
        spec.output_shape(spec.parse("F,M-2-2"), (8, 8, 1))
    assert str(error.value) == (
        "layer 2 'M-2-2' needs spatial axes; shape (64,) has none left (after F or G)"
    )
    with pytest.raises(spec.SpecError) as error:
        spec.output_shape(spec.parse("C-4-9-1-valid"), (8, 8, 1))
    assert str(error.value) == (
        "layer 1 'C-4-9-1-valid' maps shape (8, 8, 1) to (0, 0, 4); every layer must leave "
        "at least one position along each axis"
    )


def test_pooling_pads_valid_even_where_same_would_keep_a_position():
    """M-3-2 over 4 positions: 'valid' leaves (4 - 3) // 2 + 1 = 1, 'same' would leave 2."""
    assert spec.output_shape(spec.parse("M-3-2"), (4, 4, 2)) == (1, 1, 2)
