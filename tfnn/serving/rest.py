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

Requests that do not fit the signature raise `BadRequest` (HTTP 400) with a
message naming what was wrong; TensorFlow Serving answers the same cases with
400 and `{"error": "..."}`.
"""

import json

import numpy as np
import tensorflow as tf

DEFAULT_SIGNATURE = "serving_default"


class BadRequest(ValueError):
    """A request that does not fit the API or the signature (HTTP 400)."""


def status(servable):
    return {
        "model_version_status": [
            {
                "version": str(servable.version),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def metadata(servable, name):
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
        "metadata": {"signature_def": {"signature_def": servable.signature_defs}},
    }


def _array(value, spec, name):
    """A JSON value as an array of the input's dtype and shape, or BadRequest."""
    expected = f"{spec.dtype.name} of shape {spec.shape.as_list()} (-1 or None: any size)"
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nesting
        raise BadRequest(f"Input {name!r}: expected a rectangular {expected}") from None
    allowed = "biuf" if spec.dtype.is_floating else "biu"
    if array.dtype.kind not in allowed:
        raise BadRequest(f"Input {name!r}: expected numbers, a tensor of {expected}")
    if not spec.shape.is_compatible_with(array.shape):
        raise BadRequest(
            f"Input {name!r}: expected a tensor of {expected}; got shape {list(array.shape)}"
        )
    return array.astype(spec.dtype.as_numpy_dtype)


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


def predict(servable, body):
    """The JSON response (a dict) to a predict request body (bytes)."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"JSON Parse error: {error}") from None
    if not isinstance(request, dict):
        raise BadRequest("The request body must be a JSON object")
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
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
    arrays = {name: _array(values[name], specs[name], name) for name in specs}
    sizes = {array.shape[0] for array in arrays.values() if array.ndim}
    if len(sizes) > 1:
        raise BadRequest(f"All inputs must hold the same number of examples; got {sorted(sizes)}")
    function = servable.signatures[signature_name]
    outputs = {
        name: value.numpy()
        for name, value in function(**{k: tf.constant(v) for k, v in arrays.items()}).items()
    }
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
