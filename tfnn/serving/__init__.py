"""A local server for tfnn's exports that speaks TensorFlow Serving's REST API.

    tfnn-serve --model_name mnist1d --model_base_path saved_models/mnist1d

`repository` finds, loads and hot-swaps the versions under the base path;
`rest` turns TensorFlow Serving's JSON requests into signature calls and
back; `server` runs them over HTTP. See docs/serving.md.
"""
