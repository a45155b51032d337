"""A server for tfnn's exports that speaks TensorFlow Serving's REST API.

    tfnn-serve --model_name mnist1d --model_base_path saved_models/mnist1d

`policy` says which versions to serve; `repository` finds, loads, retries, reloads and
unloads them; `rest` turns TensorFlow Serving's JSON requests into arrays and outputs back
into JSON, validating on the way; `batching` merges concurrent predictions into one model
call; `metrics` counts requests for Prometheus; `app` is the WSGI application routing the
REST API over these; `wsgi` serves it over HTTP with waitress and drains on shutdown;
`server` is the `tfnn-serve` command. See docs/serving.md.
"""

__all__ = []  # the package holds its submodules, no names of its own
