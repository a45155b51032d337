"""The WSGI application: TensorFlow Serving's REST routes over a `ModelRepository`.

    GET  /v1/models/{name}[/versions/{v}]             → model status
    GET  /v1/models/{name}[/versions/{v}]/metadata    → signature defs
    POST /v1/models/{name}[/versions/{v}]:predict     → predictions
    GET  /monitoring/prometheus/metrics                → request metrics

Every answer is JSON (the metrics excepted); an error is `{"error": "..."}` with 400, 404, 405
or 413, and a failure the request did not cause is 500 with the exception's type and message
(no traceback, no path). Versions in URLs are ASCII decimal within int64.
"""

import http
import logging
import re
import time

from tfnn.serving import rest
from tfnn.serving.metrics import RequestMetrics
from tfnn.serving.repository import NotFound
from tfnn.versions import parse_version

log = logging.getLogger("tfnn.serving")

# /v1/models/{name}[/versions/{version}][/metadata | :{verb}]
ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$"
)
METRICS_PATH = "/monitoring/prometheus/metrics"
JSON = [("Content-Type", "application/json")]


class MethodNotAllowed(rest.BadRequest):
    """GET where the route wants POST, or the other way round (HTTP 405)."""

    code = 405


def application(repository, max_request_rows=10_000, batcher=None, metrics=None):
    """The WSGI application answering TensorFlow Serving's REST API from `repository`.

    Args:
        repository: the `ModelRepository` to serve.
        max_request_rows: the most examples in one predict request (more: 413).
        batcher: a `Batcher` merging concurrent predictions, or None to run each alone.
        metrics: the `RequestMetrics` to record into (default: new ones).
    """
    metrics = metrics or RequestMetrics()

    def predict(servable, body):
        signature_name, arrays, rows = rest.parse_predict(body, servable, max_request_rows)
        if batcher is None:
            outputs = servable.run(signature_name, arrays)
        else:
            outputs = batcher.run(servable, signature_name, arrays)
        return rest.response(outputs, rows)

    def answer(method, match, api, environ, seen):
        """The JSON payload; `seen["version"]` is the version once known."""
        name, verb, version = match["name"], match["verb"], match["version"]
        if version is not None and (version := parse_version(version)) is None:
            raise rest.BadRequest(
                f"Invalid version in request: {match['version'][:40]!r} "
                "(expected ASCII digits within int64)"
            )
        wanted = "POST" if verb else "GET"
        if method != wanted:
            raise MethodNotAllowed(f"{method} is not allowed here; use {wanted}")
        if api == "GetModelStatus":
            entries = repository.status(name, version)
            seen["version"] = version
            return rest.status(entries)
        servable = repository.get(name, version)
        seen["version"] = servable.version
        if api == "GetModelMetadata":
            return rest.metadata(servable, name)
        if verb != "predict":
            raise rest.BadRequest(f"{verb} is not supported: the model has predict signatures")
        return predict(servable, environ["wsgi.input"].read())

    def app(environ, start_response):
        start = time.perf_counter()
        method = environ["REQUEST_METHOD"]
        # WSGI hands over the path's bytes as Latin-1; URLs carry UTF-8.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        if path == METRICS_PATH and method == "GET":
            body, content_type = metrics.text()
            start_response("200 OK", [("Content-Type", content_type)])
            return [body]
        match = ROUTE.match(path)
        seen = {}
        try:
            if not match:
                raise NotFound(f"Malformed request: {method} {path[:200]}")
            payload = answer(method, match, _api(match), environ, seen)
            code = 200
        except NotFound as error:
            code, payload = 404, {"error": str(error)}
        except rest.BadRequest as error:
            code, payload = error.code, {"error": str(error)}
        except Exception as error:  # noqa: BLE001 — a failed request must not stop the server
            log.exception("%s %s failed", method, path[:200])
            code, payload = 500, {"error": f"{type(error).__name__}: {error}"}
        body = rest.dumps(payload)
        if match:
            # Labels only from what exists, so clients cannot grow the metrics without bound.
            name = match["name"] if match["name"] == repository.name else ""
            seconds = time.perf_counter() - start
            metrics.record(name, seen.get("version"), _api(match), code, seconds)
        headers = [*JSON, ("Content-Length", str(len(body)))]
        start_response(f"{code} {http.HTTPStatus(code).phrase}", headers)
        return [body]

    return app


def _api(match):
    """The API a request calls, as TensorFlow Serving names it in metrics."""
    if match["verb"]:
        return "predict" if match["verb"] == "predict" else "unsupported"
    return "GetModelMetadata" if match["metadata"] else "GetModelStatus"
