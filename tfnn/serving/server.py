"""`tfnn-serve`: TensorFlow Serving's REST API for one model, over HTTP.

    tfnn-serve --model_name mnist1d --model_base_path saved_models/mnist1d \
               [--rest_api_port 8501] [--rest_api_host 127.0.0.1]

The flags are `tensorflow_model_server`'s. The server serves the highest
version under the base path and loads a newer one when it appears (checked
every --file_system_poll_wait_seconds). It binds 127.0.0.1 unless told
otherwise, answers each connection in its own thread, refuses request bodies
over --max_request_bytes (413), answers every bad request with 4xx and
`{"error": "..."}` and keeps serving, and stops cleanly on SIGTERM or SIGINT.

HTTP comes from Werkzeug (Pallets): a maintained WSGI toolkit whose threaded
server speaks HTTP/1.1 with keep-alive (a client's connection is reused, so
a request pays no TCP handshake), parses and bounds request bodies, and shuts
down on request. It arrives with TensorBoard already; pyproject.toml names it
directly.
"""

import json
import os
import pathlib
import re
import signal
import socket
import sys
import threading

from tfnn.cli.flags import OneLineParser, non_negative_float, non_negative_int, port

# /v1/models/{name}[/versions/{version}][/metadata | :{verb}]
ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$"
)


def parser():
    p = OneLineParser(prog="tfnn-serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model_name", default="default", help="the model's name in request URLs")
    p.add_argument("--model_base_path", required=True, help="the folder of integer version folders")
    p.add_argument("--rest_api_port", type=port, default=8501, help="0: any free port")
    p.add_argument("--rest_api_host", default="127.0.0.1", help="the address to bind")
    p.add_argument(
        "--file_system_poll_wait_seconds",
        type=non_negative_float,
        default=1.0,
        help="how often to look for a new version (0: never)",
    )
    p.add_argument(
        "--max_request_bytes",
        type=non_negative_int,
        default=16 * 2**20,
        help="larger request bodies are refused with 413",
    )
    return p


def application(repository, max_request_bytes):
    """The WSGI application answering TensorFlow Serving's REST API from `repository`."""
    from werkzeug.exceptions import HTTPException
    from werkzeug.wrappers import Request, Response

    from tfnn.serving import rest
    from tfnn.serving.repository import NotFound

    def reply(payload, code=200):
        return Response(json.dumps(payload), status=code, mimetype="application/json")

    def answer(request):
        match = ROUTE.match(request.path)
        if not match:
            return reply({"error": f"Malformed request: {request.method} {request.path}"}, 404)
        version = match["version"]
        if version is not None:
            if not version.isdigit():
                return reply({"error": f"Invalid version in request: {version!r}"}, 400)
            version = int(version)
        verb = match["verb"]
        wanted = "POST" if verb else "GET"
        if request.method != wanted:
            return reply({"error": f"{request.method} is not allowed here; use {wanted}"}, 405)
        servable = repository.get(match["name"], version)
        if verb is None:
            if match["metadata"]:
                return reply(rest.metadata(servable, match["name"]))
            return reply(rest.status(servable))
        if verb != "predict":
            return reply(
                {"error": f"{verb} is not supported: the model has predict signatures"}, 400
            )
        return reply(rest.predict(servable, request.get_data()))

    def app(environ, start_response):
        request = Request(environ)
        request.max_content_length = max_request_bytes
        try:
            response = answer(request)
        except NotFound as error:
            response = reply({"error": str(error)}, 404)
        except rest.BadRequest as error:
            response = reply({"error": str(error)}, 400)
        except HTTPException as error:  # e.g. 413 for a body over the limit
            response = reply({"error": error.description}, error.code)
        except Exception as error:  # noqa: BLE001 — a failed request must not stop the server
            response = reply({"error": f"{type(error).__name__}: {error}"}, 500)
        return response(environ, start_response)

    return app


def serve(args, ready=None):
    """Runs the server until SIGTERM/SIGINT (or `shutdown()` on the server `ready` receives)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from werkzeug.serving import WSGIRequestHandler, make_server

    from tfnn.serving.repository import ModelRepository

    repository = ModelRepository(args.model_name, args.model_base_path)

    class Handler(WSGIRequestHandler):
        # Headers and body leave in separate writes: without TCP_NODELAY the
        # body can wait for the client's delayed ACK of the headers.
        disable_nagle_algorithm = True

        def log_request(self, *args, **kwargs):  # no access log on the hot path
            pass

    family = socket.AF_INET6 if ":" in args.rest_api_host else socket.AF_INET
    listener = socket.create_server(
        (args.rest_api_host, args.rest_api_port), family=family, backlog=128
    )
    server = make_server(
        args.rest_api_host,
        listener.getsockname()[1],
        application(repository, args.max_request_bytes),
        threaded=True,
        request_handler=Handler,
        fd=listener.fileno(),  # bound here, so a taken port is an OSError, not an exit
    )
    listener.close()  # the server holds its own duplicate
    stop = threading.Event()

    def poll():
        while not stop.wait(args.file_system_poll_wait_seconds):
            try:
                repository.poll()
            except Exception as error:  # noqa: BLE001 — keep serving the version we have
                print(f"tfnn-serve: could not load a new version: {error}", file=sys.stderr)

    if args.file_system_poll_wait_seconds > 0:
        threading.Thread(target=poll, daemon=True).start()

    def shut_down(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, shut_down)
        signal.signal(signal.SIGINT, shut_down)
    version = repository.get(args.model_name).version
    print(
        f"tfnn-serve: serving {args.model_name} version {version} "
        f"at http://{args.rest_api_host}:{server.port}/v1/models/{args.model_name}",
        file=sys.stderr,
        flush=True,
    )
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    finally:
        stop.set()
        server.server_close()
    print("tfnn-serve: stopped", file=sys.stderr, flush=True)


def spawn(model_name, model_base_path, *flags, timeout=60):
    """Starts `tfnn-serve` in a child process on a free loopback port and waits until it
    serves; returns (the process, its base URL "http://127.0.0.1:<port>").

    The server's stderr keeps being read into `process.log` (a list of lines),
    so it never blocks on a full pipe. Stop it with
    `process.send_signal(signal.SIGTERM)`; it exits 0.
    """
    import subprocess
    import time

    command = [sys.executable, "-m", "tfnn.serving.server", "--model_name", model_name]
    command += ["--model_base_path", str(model_base_path), "--rest_api_port", "0", *flags]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith(f"tfnn-serve: serving {model_name} "):
            process.log = lines
            threading.Thread(target=lines.extend, args=(process.stderr,), daemon=True).start()
            return process, line.split(" at ")[1].split("/v1/")[0]
        if time.monotonic() > deadline:
            break
    process.kill()
    raise RuntimeError(f"tfnn-serve did not start: {''.join(lines)[-2000:]}")


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    if not pathlib.Path(args.model_base_path).is_dir():
        p.error(f"argument --model_base_path: {args.model_base_path!r} is not a folder")
    try:
        serve(args)
    except ValueError as error:  # no version to serve
        p.error(str(error))
    except OSError as error:  # the address is taken or not ours
        p.error(f"cannot listen on {args.rest_api_host}:{args.rest_api_port}: {error.strerror}")


if __name__ == "__main__":
    main()
