"""TensorFlow Serving's request and response formats and their validation, in process."""

import json

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
