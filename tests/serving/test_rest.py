"""TensorFlow Serving's request and response formats, on a signature with two inputs."""

import json

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


@pytest.fixture(scope="module")
def servable(tmp_path_factory):
    path = tmp_path_factory.mktemp("two") / "1"
    module = TwoInputs()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return Servable(path, 1)


def predict(servable, body):
    return rest.predict(servable, json.dumps(body).encode())


def test_rows_name_each_input_and_get_an_object_per_example(servable):
    answer = predict(servable, {"instances": [{"x": [1, 2], "k": 3}, {"x": [0.5, 0.5], "k": 0}]})
    assert answer == {"predictions": [{"sum": 6.0, "k": 6}, {"sum": 1.0, "k": 0}]}


def test_columns_name_each_input_and_get_whole_tensors(servable):
    answer = predict(servable, {"inputs": {"x": [[1, 2], [0.5, 0.5]], "k": [3, 0]}})
    assert answer == {"outputs": {"sum": [6.0, 1.0], "k": [6, 0]}}


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [[1, 2]]}, "objects naming the inputs"),
        ({"instances": [{"x": [1, 2]}]}, "must name the inputs"),
        ({"inputs": [[1, 2]]}, "object naming the inputs"),
        ({"inputs": {"x": [[1, 2]], "k": [1, 2]}}, "same number of examples"),
        ({"inputs": {"x": [[1, 2]], "k": [1.5]}}, "numbers"),  # a fraction for an int64 input
        ({"instances": [{"x": [1, 2], "k": 1}], "signature_name": 3}, "not found"),
    ],
)
def test_requests_that_do_not_fit_the_signature(servable, body, message):
    with pytest.raises(rest.BadRequest, match=message):
        predict(servable, body)


def test_status_and_metadata_shapes(servable):
    assert rest.status(servable)["model_version_status"][0]["version"] == "1"
    metadata = rest.metadata(servable, "two")
    assert metadata["model_spec"] == {"name": "two", "signature_name": "", "version": "1"}
    inputs = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert sorted(inputs) == ["k", "x"] and inputs["k"]["dtype"] == "DT_INT64"
    assert np.isclose(
        predict(servable, {"inputs": {"x": [[0, 0]], "k": [1]}})["outputs"]["sum"][0], 1
    )
