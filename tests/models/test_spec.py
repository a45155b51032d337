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
