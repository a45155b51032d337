"""TensorFlow Serving's REST API (tensorflow.org/tfx/serving/api_rest) over a `Servable`.

    GET  /v1/models/{name}[/versions/{v}]             → model status
    GET  /v1/models/{name}[/versions/{v}]/metadata    → signature defs
    POST /v1/models/{name}[/versions/{v}]:predict     → predictions

A predict request names an optional `signature_name` (default
"serving_default") and exactly one of

    "instances": [row, row, …]     rows: a bare value per example for a
                                   one-input signature, else {input: value}
                                   → {"predictions": [row, …]} (bare values
                                   for one output, else {output: value})
    "inputs": tensor or {input: tensor}
                                   columns: whole batches per input
                                   → {"outputs": tensor or {output: tensor}}

Validation follows TensorFlow Serving's JSON reader: numbers only where the
signature wants numbers (no booleans, no strings), integers for integer inputs,
`signature_name` a string. Where TensorFlow Serving writes non-finite floats as
bare `NaN`/`Infinity` tokens, which RFC 8259 JSON does not have, these requests
are refused instead: NaN and ±Infinity in a request, values beyond float32's
range for a float32 input, and outputs that are not finite. JSON nested deeper
than the parser's limit, and more than `max_rows` examples, are refused too.

Requests that do not fit raise `BadRequest` (HTTP 400) or `TooLarge` (413)
with a message naming what was wrong; the server answers `{"error": "..."}`.
"""

import json

import numpy as np

DEFAULT_SIGNATURE = "serving_default"


class BadRequest(ValueError):
    """A request that does not fit the API or the signature (HTTP 400)."""

    code = 400


class TooLarge(BadRequest):
    """A request with more examples than the server takes at once (HTTP 413)."""

    code = 413


def dumps(payload):
    """`payload` as RFC 8259 JSON bytes (NaN and Infinity raise ValueError)."""
    return json.dumps(payload, allow_nan=False).encode()


def status(entries):
    return {"model_version_status": entries}


def metadata(servable, name):
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
        "metadata": {"signature_def": {"signature_def": servable.signature_defs}},
    }


def _refuse_constant(token):
    raise BadRequest(f"JSON Parse error: {token} is not a number JSON allows (RFC 8259)")


def _load(body):
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest("JSON Parse error: nested too deeply") from None
    except ValueError as error:  # including UnicodeDecodeError
        raise BadRequest(f"JSON Parse error: {error}") from None


def _has_bool(value):
    """Whether a JSON value holds true or false anywhere (without recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            return True
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return False


def _array(value, spec, name):
    """A JSON value as an array of the input's dtype and shape, or BadRequest."""
    dtype = spec.dtype.as_numpy_dtype
    expected = f"{spec.dtype.name} of shape {spec.shape.as_list()} (-1 or None: any size)"
    try:
        array = np.asarray(value)
    except ValueError:  # ragged, or deeper than NumPy's 64 dimensions
        raise BadRequest(f"Input {name!r}: expected a rectangular {expected}") from None
    allowed = "iuf" if spec.dtype.is_floating else "iu"
    if array.dtype.kind not in allowed:
        kind = "numbers" if spec.dtype.is_floating else "integers"
        raise BadRequest(f"Input {name!r}: expected {kind}, a tensor of {expected}")
    if not spec.shape.is_compatible_with(array.shape):
        raise BadRequest(
            f"Input {name!r}: expected a tensor of {expected}; got shape {list(array.shape)}"
        )
    if spec.dtype.is_floating:
        with np.errstate(over="ignore"):  # overflow becomes inf, refused below
            cast = array.astype(dtype)
        if not np.isfinite(cast).all():
            raise BadRequest(
                f"Input {name!r}: values must be finite and within {spec.dtype.name}'s range"
            )
        return cast
    limits = np.iinfo(dtype)  # an empty JSON list is float64, refused above: array has values
    if array.min() < limits.min or array.max() > limits.max:
        raise BadRequest(f"Input {name!r}: values must be within {spec.dtype.name}'s range")
    return array.astype(dtype)


def _rows(instances, specs):
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list of examples")
    names = sorted(specs)
    if all(isinstance(row, dict) for row in instances):
        for row in instances:
            if sorted(row) != names:
                raise BadRequest(
                    f"Each instance must name the inputs {names}; got one with {sorted(row)}"
                )
        return {name: [row[name] for row in instances] for name in names}
    if len(names) == 1 and not any(isinstance(row, dict) for row in instances):
        return {names[0]: instances}
    raise BadRequest(f"Instances must be objects naming the inputs {names}")


def _columns(inputs, specs):
    names = sorted(specs)
    if isinstance(inputs, dict):
        if sorted(inputs) != names:
            raise BadRequest(f"'inputs' must name the inputs {names}; got {sorted(inputs)}")
        return inputs
    if len(names) == 1:
        return {names[0]: inputs}
    raise BadRequest(f"'inputs' must be an object naming the inputs {names}")


def parse_predict(body, servable, max_rows):
    """A predict request body (bytes) as (signature name, {input: array}, whether in rows).

    Raises BadRequest, or TooLarge for more than `max_rows` examples.
    """
    request = _load(body)
    if not isinstance(request, dict):
        raise BadRequest("The request body must be a JSON object")
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
        raise BadRequest("'signature_name' must be a string")
    if signature_name not in servable.signatures:
        raise BadRequest(
            f"Serving signature name: {json.dumps(signature_name)} not found in signature def "
            f"(available: {sorted(servable.signatures)})"
        )
    if ("instances" in request) == ("inputs" in request):
        raise BadRequest("The request must have exactly one of 'instances' and 'inputs'")
    specs = servable.inputs[signature_name]
    rows = "instances" in request
    values = _rows(request["instances"], specs) if rows else _columns(request["inputs"], specs)
    for value in values.values():
        if isinstance(value, list) and len(value) > max_rows:
            raise TooLarge(f"{len(value)} examples in one request; at most {max_rows}")
    if b"true" in body or b"false" in body:  # rare: look closer only then
        for name, value in values.items():
            if _has_bool(value):
                raise BadRequest(f"Input {name!r}: expected numbers, got true or false")
    arrays = {name: _array(values[name], specs[name], name) for name in specs}
    sizes = {array.shape[0] for array in arrays.values() if array.ndim}
    if len(sizes) > 1:
        raise BadRequest(f"All inputs must hold the same number of examples; got {sorted(sizes)}")
    return signature_name, arrays, rows


def response(outputs, rows):
    """The JSON response (a dict) holding `outputs` (name → array) in the request's format."""
    for name, value in outputs.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise BadRequest(
                f"Output {name!r} holds NaN or Infinity, which JSON (RFC 8259) cannot carry"
            )
    if rows:
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values())).tolist()}
        size = len(next(iter(outputs.values())))
        return {
            "predictions": [
                {name: value[i].tolist() for name, value in outputs.items()} for i in range(size)
            ]
        }
    if len(outputs) == 1:
        return {"outputs": next(iter(outputs.values())).tolist()}
    return {"outputs": {name: value.tolist() for name, value in outputs.items()}}
