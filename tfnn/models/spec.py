"""NPFL114's CNN specification strings, parsed without TensorFlow.

A spec is a comma-separated list of layers:

    C-filters-kernel-stride-padding    convolution + ReLU                  C-16-5-1-same
    CB-filters-kernel-stride-padding   convolution, no bias → BN → ReLU    CB-16-3-1-same
    M-pool-stride                      max pooling                         M-2-2
    A-pool-stride                      average pooling                     A-2-2
    R-[layers]                         residual block: x + layers(x)       R-[C-8-3-1-same,D-0.1]
    G                                  global average pooling              G
    F                                  flatten
    H-units                            dense + ReLU                        H-100
    D-rate                             dropout                             D-0.3

For example "CB-16-5-1-same,M-2-2,R-[CB-16-3-1-same,CB-16-3-1-same],F,H-100,D-0.3".
The same spec builds a 1D network for signals and a 2D one for images. `G`
(averaging each channel over all positions) is tfnn's addition: it makes the
head independent of the input size.

`output_shape` follows an example's shape through the layers without TensorFlow, so a spec
that shrinks its input below one position is refused before a model is built:
'valid' padding (and pooling) leaves floor((n - kernel) / stride) + 1 positions of n,
'same' padding ceil(n / stride).
"""

import dataclasses
import math


class SpecError(ValueError):
    """A malformed spec; the message quotes the offending part."""


@dataclasses.dataclass(frozen=True)
class Conv:
    filters: int
    kernel: int
    stride: int
    padding: str
    batch_norm: bool


@dataclasses.dataclass(frozen=True)
class Pool:
    kind: str  # "max" or "average"
    size: int
    stride: int


@dataclasses.dataclass(frozen=True)
class Residual:
    layers: tuple


@dataclasses.dataclass(frozen=True)
class Flatten:
    pass


@dataclasses.dataclass(frozen=True)
class GlobalPool:
    pass


@dataclasses.dataclass(frozen=True)
class Hidden:
    units: int


@dataclasses.dataclass(frozen=True)
class Dropout:
    rate: float


def _split(spec):
    """Splits at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(spec):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise SpecError(f"unmatched ']' at position {i} of {spec!r}")
        elif char == "," and depth == 0:
            parts.append(spec[start:i])
            start = i + 1
    if depth:
        raise SpecError(f"unmatched '[' in {spec!r}")
    parts.append(spec[start:])
    return parts


def _positive_int(text, part, usage):
    if not text.isdigit() or int(text) < 1:
        raise SpecError(f"{part!r}: expected {usage}")
    return int(text)


_USAGE = {
    "C": "C-filters-kernel-stride-padding: positive ints, padding valid or same (C-16-5-1-same)",
    "CB": "CB-filters-kernel-stride-padding: positive ints, padding valid or same (CB-16-3-1-same)",
    "M": "M-pool-stride with positive ints (e.g. M-2-2)",
    "A": "A-pool-stride with positive ints (e.g. A-2-2)",
    "R": "R-[layers] with a non-empty comma-separated list inside the brackets",
    "F": "F alone",
    "G": "G alone",
    "H": "H-units with a positive int (e.g. H-100)",
    "D": "D-rate with a rate in [0, 1) (e.g. D-0.3)",
}


def _parse_part(part):
    kind, _, rest = part.partition("-")
    if kind not in _USAGE:
        raise SpecError(f"{part!r}: unknown layer {kind!r}; expected one of {', '.join(_USAGE)}")
    usage = _USAGE[kind]
    if not part.isascii():  # int() and float() read other scripts' digits too (٣ as 3)
        raise SpecError(f"{part!r}: expected {usage}")
    if kind == "R":
        if not (rest.startswith("[") and rest.endswith("]")) or len(rest) < 3:
            raise SpecError(f"{part!r}: expected {usage}")
        return Residual(tuple(parse(rest[1:-1])))
    fields = rest.split("-") if rest else []
    if kind in ("C", "CB"):
        if len(fields) != 4 or fields[3] not in ("valid", "same"):
            raise SpecError(f"{part!r}: expected {usage}")
        filters, kernel, stride = (_positive_int(f, part, usage) for f in fields[:3])
        return Conv(filters, kernel, stride, fields[3], batch_norm=kind == "CB")
    if kind in ("M", "A"):
        if len(fields) != 2:
            raise SpecError(f"{part!r}: expected {usage}")
        size, stride = (_positive_int(f, part, usage) for f in fields)
        return Pool("max" if kind == "M" else "average", size, stride)
    if kind in ("F", "G"):
        if fields:
            raise SpecError(f"{part!r}: expected {usage}")
        return Flatten() if kind == "F" else GlobalPool()
    if kind == "H":
        if len(fields) != 1:
            raise SpecError(f"{part!r}: expected {usage}")
        return Hidden(_positive_int(fields[0], part, usage))
    try:
        rate = float(rest)
    except ValueError:
        raise SpecError(f"{part!r}: expected {usage}") from None
    if not 0.0 <= rate < 1.0:
        raise SpecError(f"{part!r}: expected {usage}")
    return Dropout(rate)


def parse(spec):
    """The layers of a spec string, in order; `SpecError` names the first bad part."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"expected a non-empty spec like C-16-5-1-same,M-2-2,F,H-100, got {spec!r}")
    return [_parse_part(part.strip()) for part in _split(spec.replace(" ", ""))]


def term(item):
    """The spec term of a parsed layer: term(Pool("max", 2, 2)) == "M-2-2"."""
    if isinstance(item, Conv):
        kind = "CB" if item.batch_norm else "C"
        return f"{kind}-{item.filters}-{item.kernel}-{item.stride}-{item.padding}"
    if isinstance(item, Pool):
        return f"{'M' if item.kind == 'max' else 'A'}-{item.size}-{item.stride}"
    if isinstance(item, Residual):
        return f"R-[{','.join(map(term, item.layers))}]"
    if isinstance(item, Hidden):
        return f"H-{item.units}"
    if isinstance(item, Dropout):
        return f"D-{item.rate:g}"
    return "F" if isinstance(item, Flatten) else "G"


def _positions(n, kernel, stride, *, same=False):
    """Positions left of `n` along one axis, padded 'same' or 'valid' (the formulas of
    TensorFlow's convolution ops)."""
    if same:
        return math.ceil(n / stride)
    return (n - kernel) // stride + 1


def _layer_shape(item, shape, position):
    """The shape `item` (layer `position` of the spec) maps an example's `shape` to."""
    spatial, channels = shape[:-1], shape[-1]
    if isinstance(item, (Conv, Pool, GlobalPool)) and not spatial:
        raise SpecError(
            f"layer {position} {term(item)!r} needs spatial axes; shape {shape} has none "
            "left (after F or G)"
        )
    if isinstance(item, Conv):
        same = item.padding == "same"
        positions = (_positions(n, item.kernel, item.stride, same=same) for n in spatial)
        return (*positions, item.filters)
    if isinstance(item, Pool):  # Keras's pooling layers pad 'valid'
        return (*(_positions(n, item.size, item.stride) for n in spatial), channels)
    if isinstance(item, Residual):
        inner = _shapes(item.layers, shape, f"{position}.")
        if inner != shape:
            raise SpecError(
                f"layer {position} {term(item)!r} maps shape {shape} to {inner}; "
                "a residual block's output must have its input's shape"
            )
        return shape
    if isinstance(item, Flatten):
        return (math.prod(shape),)
    if isinstance(item, GlobalPool):
        return (channels,)
    if isinstance(item, Hidden):  # Dense acts on the last axis
        return (*spatial, item.units)
    return shape


def _shapes(items, shape, prefix):
    for index, item in enumerate(items, start=1):
        position = f"{prefix}{index}"
        after = _layer_shape(item, shape, position)
        if min(after) < 1:
            raise SpecError(
                f"layer {position} {term(item)!r} maps shape {shape} to {after}; every layer "
                "must leave at least one position along each axis"
            )
        shape = after
    return shape


def output_shape(layers, example_shape):
    """The shape of one example after the parsed `layers`, from its shape: signals [T] (one
    channel) or [T, C], images [H, W, C].

    Raises:
        SpecError: naming the first layer (its position, 1-based, "2.1" inside a residual
            block, and its term) that would leave an axis with no position, that needs
            spatial axes where none are left, or a residual block that changes the shape.
    """
    shape = tuple(int(n) for n in example_shape)
    if len(shape) == 1:
        shape = (*shape, 1)
    return _shapes(layers, shape, "")
