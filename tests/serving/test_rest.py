"""TensorFlow Serving's request and response formats and their validation, in process."""

import json
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tfnn.serving import rest
from tfnn.serving.repository import Servable


class TwoInputs(tf.Module):
    @tf.function(
        input_signature=[tf.TensorSpec([None, 2], tf.float32), tf.TensorSpec([None], tf.int64)]
    )
    def serve(self, x, k):
        return {"sum": tf.reduce_sum(x, axis=1) + tf.cast(k, tf.float32), "k": k * 2}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def log(self, x):
        return {"log": tf.math.log(x)}


@pytest.fixture(scope="module")
def servable(tmp_path_factory):
    path = tmp_path_factory.mktemp("two") / "1"
    module = TwoInputs()
    signatures = {"serving_default": module.serve, "log": module.log}
    tf.saved_model.save(module, str(path), signatures=signatures)
    return Servable(path, 1)


def predict(servable, body, max_rows=100):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    signature_name, arrays, rows = rest.parse_predict(body, servable, max_rows)
    return rest.response(servable.run(signature_name, arrays), rows)


def test_rows_name_each_input_and_get_an_object_per_example(servable):
    answer = predict(servable, {"instances": [{"x": [1, 2], "k": 3}, {"x": [0.5, 0.5], "k": 0}]})
    assert answer == {"predictions": [{"sum": 6.0, "k": 6}, {"sum": 1.0, "k": 0}]}


def test_columns_name_each_input_and_get_whole_tensors(servable):
    answer = predict(servable, {"inputs": {"x": [[1, 2], [0.5, 0.5]], "k": [3, 0]}})
    assert answer == {"outputs": {"sum": [6.0, 1.0], "k": [6, 0]}}
    assert predict(servable, {"signature_name": "log", "inputs": [1.0]}) == {"outputs": [0.0]}


def test_int64_values_pass_through_exactly(servable):
    k = 2**62 - 1  # not exact as a float64; 2k is still within int64
    answer = predict(servable, {"inputs": {"x": [[0, 0]], "k": [k]}})
    assert answer["outputs"]["k"] == [2 * k]


def nested(depth, leaf="0"):
    return ("[" * depth + leaf + "]" * depth).encode()


@pytest.mark.parametrize(
    "body, error, message",
    [
        ({"instances": [[1, 2]]}, rest.BadRequest, "objects naming the inputs"),
        ({"instances": [{"x": [1, 2]}]}, rest.BadRequest, "must name the inputs"),
        ({"inputs": [[1, 2]]}, rest.BadRequest, "object naming the inputs"),
        ({"inputs": {"x": [[1, 2]], "k": [1, 2]}}, rest.BadRequest, "same number of examples"),
        ({"inputs": {"x": [[1, 2]], "k": [1.5]}}, rest.BadRequest, "expected integers"),
        ({"inputs": {"x": [[1, 2]], "k": [1.0]}}, rest.BadRequest, "expected integers"),
        ({"inputs": {"x": [[1, 2]], "k": [True]}}, rest.BadRequest, "true or false"),
        ({"inputs": {"x": [[1, True]], "k": [1]}}, rest.BadRequest, "true or false"),
        ({"inputs": {"x": [[False, True]], "k": [1]}}, rest.BadRequest, "true or false"),
        ({"inputs": {"x": [[1, "2"]], "k": [1]}}, rest.BadRequest, "expected numbers"),
        ({"inputs": {"x": [[1, None]], "k": [1]}}, rest.BadRequest, "expected numbers"),
        ({"inputs": {"x": [[1, 2]], "k": [2**63]}}, rest.BadRequest, "int64's range"),
        ({"inputs": {"x": [[1, 2]], "k": [2**64]}}, rest.BadRequest, "expected integers"),
        ({"inputs": {"x": [[1, 3e39]], "k": [1]}}, rest.BadRequest, "float32's range"),
        (b'{"inputs": {"x": [[1, 1e400]], "k": [1]}}', rest.BadRequest, "finite"),
        (b'{"inputs": {"x": [[1, NaN]], "k": [1]}}', rest.BadRequest, "NaN is not a number"),
        (b'{"inputs": {"x": [[Infinity, 1]], "k": [1]}}', rest.BadRequest, "Infinity is not"),
        (b'{"inputs": {"x": [[-Infinity, 1]], "k": [1]}}', rest.BadRequest, "-Infinity is not"),
        ({"signature_name": [], "instances": [{"x": [1, 2], "k": 1}]}, rest.BadRequest, "string"),
        ({"signature_name": 3, "instances": [{"x": [1, 2], "k": 1}]}, rest.BadRequest, "string"),
        ({"signature_name": "nope", "inputs": [1.0]}, rest.BadRequest, "not found"),
        ({"signature_name": "log", "inputs": [0.0]}, rest.BadRequest, "Output 'log' holds NaN"),
        ({"signature_name": "log", "inputs": [[1.0]]}, rest.BadRequest, "shape"),
        ({"signature_name": "log", "inputs": [1.0] * 101}, rest.TooLarge, "101 examples"),
        ({"signature_name": "log", "instances": [1.0] * 101}, rest.TooLarge, "at most 100"),
        (nested(100_000), rest.BadRequest, "nested too deeply"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, rest.BadRequest, "nested too deeply"),
        (b'{"signature_name": "log", "inputs": ' + nested(900) + b"}", rest.BadRequest, "rect"),
        (b"\xff\xfe", rest.BadRequest, "JSON Parse error"),
        (b"[1, 2]", rest.BadRequest, "JSON object"),
        ({}, rest.BadRequest, "exactly one of"),
        ({"instances": []}, rest.BadRequest, "non-empty"),
    ],
)
def test_requests_that_do_not_fit_are_refused_with_their_reason(servable, body, error, message):
    with pytest.raises(error, match=message) as raised:
        predict(servable, body)
    assert raised.type is error  # 413 only for the row cap, 400 for the rest


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_a_body_is_read_in_any_encoding_json_detects(servable, encoding):
    """RFC 8259 JSON in UTF-8, or UTF-16/32 as Python's json reads them (with or without a
    byte order mark). Catches the body decoded as UTF-8 only, or its BOM read as text."""
    body = json.dumps({"signature_name": "log", "inputs": [1.0]}).encode(encoding)
    assert predict(servable, body) == {"outputs": [0.0]}


def test_a_word_true_inside_a_string_does_not_trip_the_boolean_check(servable):
    answer = predict(servable, {"signature_name": "log", "inputs": [1.0], "note": "true"})
    assert answer == {"outputs": [0.0]}


def test_responses_are_rfc_8259_json():
    with pytest.raises(ValueError):
        rest.dumps({"x": float("nan")})
    assert rest.dumps({"x": [1.5]}) == b'{"x": [1.5]}'


def test_status_and_metadata_shapes(servable):
    entries = [{"version": "1", "state": "AVAILABLE", "status": {}}]
    assert rest.status(entries) == {"model_version_status": entries}
    metadata = rest.metadata(servable, "two")
    assert metadata["model_spec"] == {"name": "two", "signature_name": "", "version": "1"}
    inputs = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert sorted(inputs) == ["k", "x"] and inputs["k"]["dtype"] == "DT_INT64"


@pytest.mark.parametrize(
    "body",
    [
        {"signature_name": "log", "inputs": [1.0] * 100},
        {"signature_name": "log", "instances": [1.0] * 100},
        {"instances": [{"x": [1, 2], "k": 1}] * 100},
    ],
)
def test_exactly_max_rows_examples_are_taken(servable, body):
    answer = predict(servable, body, max_rows=100)
    assert len(next(iter(answer.values()))) in (100, 2)  # a list of rows, or two columns


def test_one_row_more_than_max_rows_is_refused_for_every_input_format(servable):
    for body in [
        {"instances": [{"x": [1, 2], "k": 1}] * 101},
        {"inputs": {"x": [[1, 2]] * 101, "k": [1] * 101}},
    ]:
        with pytest.raises(rest.TooLarge, match="^101 examples in one request; at most 100$"):
            predict(servable, body)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [[1, 2]]}, "Instances must be objects naming the inputs ['k', 'x']"),
        (
            {"signature_name": "log", "instances": [1.0, {"x": 1.0}]},
            "Instances must be objects naming the inputs ['x']",
        ),
        (
            {"instances": [{"x": [1, 2]}]},
            "Each instance must name the inputs ['k', 'x']; got one with ['x']",
        ),
        ({"inputs": [[1, 2]]}, "'inputs' must be an object naming the inputs ['k', 'x']"),
        ({"inputs": {"x": [[1, 2]]}}, "'inputs' must name the inputs ['k', 'x']; got ['x']"),
        ({"instances": 5}, "'instances' must be a non-empty list of examples"),
        ({"instances": {"x": 1}}, "'instances' must be a non-empty list of examples"),
        (
            {"inputs": {"x": [[1, 2]], "k": [1, 2]}},
            "All inputs must hold the same number of examples; got [1, 2]",
        ),
        (
            {"inputs": {"x": [[1, 2]], "k": [1.5]}},
            "Input 'k': expected integers, a tensor of int64 of shape [None] "
            "(-1 or None: any size)",
        ),
        (
            {"inputs": {"x": [[1, "2"]], "k": [1]}},
            "Input 'x': expected numbers, a tensor of float32 of shape [None, 2] "
            "(-1 or None: any size)",
        ),
        (
            {"inputs": {"x": [1, 2], "k": [3]}},
            "Input 'x': expected a tensor of float32 of shape [None, 2] "
            "(-1 or None: any size); got shape [2]",
        ),
        (
            {"signature_name": "log", "inputs": [[1.0], [2.0, 3.0]]},
            "Input 'x': expected a rectangular float32 of shape [None] (-1 or None: any size)",
        ),
        (
            {"inputs": {"x": [[1, 2]], "k": [2**63]}},
            "Input 'k': values must be within int64's range",
        ),
        (
            {"inputs": {"x": [[1, 3e39]], "k": [1]}},
            "Input 'x': values must be finite and within float32's range",
        ),
        (
            {"inputs": {"x": [[1, 2]], "k": [False]}},
            "Input 'k': expected numbers, got true or false",
        ),
        (
            {"inputs": {"x": {"a": [True]}, "k": [1]}},  # inside an object too
            "Input 'x': expected numbers, got true or false",
        ),
        (
            {"signature_name": "nope", "inputs": [1.0]},
            'Serving signature name: "nope" not found in signature def '
            "(available: ['log', 'serving_default'])",
        ),
        (
            {"signature_name": "log", "inputs": [0.0]},
            "Output 'log' holds NaN or Infinity, which JSON (RFC 8259) cannot carry",
        ),
        ({}, "The request must have exactly one of 'instances' and 'inputs'"),
        ({"instances": [], "inputs": []}, "The request must have exactly one of"),
        ({"signature_name": 3, "inputs": [1.0]}, "'signature_name' must be a string"),
        (b"[1, 2]", "The request body must be a JSON object"),
        (b"nope", "JSON Parse error: Expecting value: line 1 column 1 (char 0)"),
        (nested(100_000), "JSON Parse error: nested too deeply"),
        (b'{"inputs": [NaN]}', "JSON Parse error: NaN is not a number JSON allows (RFC 8259)"),
    ],
)
def test_each_refusal_says_what_was_wrong(servable, body, message):
    with pytest.raises(rest.BadRequest) as raised:
        predict(servable, body)
    assert str(raised.value).startswith(message)


def test_the_extremes_of_int64_pass_and_one_past_is_refused(servable):
    for k in (-(2**63), 2**63 - 1):
        assert predict(servable, {"inputs": {"x": [[0, 0]], "k": [k]}})["outputs"]["k"] == [
            (2 * k + 2**63) % 2**64 - 2**63  # the model doubles k in int64, wrapping
        ]
    with pytest.raises(rest.BadRequest, match="expected integers"):  # not even an integer type
        predict(servable, {"inputs": {"x": [[0, 0]], "k": [-(2**63) - 1]}})


def test_the_largest_float32_passes(servable):
    largest = float(np.finfo(np.float32).max)
    answer = predict(servable, {"inputs": {"x": [[largest, 0]], "k": [0]}})
    assert answer["outputs"]["sum"] == [largest]


def test_one_output_in_rows_is_a_bare_value_per_example(servable):
    answer = predict(servable, {"signature_name": "log", "instances": [1.0, 1.0]})
    assert answer == {"predictions": [0.0, 0.0]}


def test_an_empty_list_for_an_integer_input_is_refused_as_not_integers(servable):
    # NumPy reads an empty JSON list as float64: no integer array is ever empty
    with pytest.raises(rest.BadRequest, match="Input 'k': expected integers"):
        predict(servable, {"inputs": {"x": [[0, 0]], "k": []}})


def test_a_float_beyond_float32_is_refused_without_a_warning(servable):
    # NumPy warns of the overflow in the cast unless told not to: one line of log per request
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(rest.BadRequest, match="within float32's range"):
            predict(servable, {"inputs": {"x": [[1, 3e39]], "k": [1]}})
