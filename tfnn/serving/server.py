"""`tfnn-serve`: TensorFlow Serving's REST API for one model, over HTTP.

    tfnn-serve --model_name mnist1d --model_base_path saved_models/mnist1d \\
               [--rest_api_port 8501] [--rest_api_host 127.0.0.1] [--enable_batching=false]

The flags named as `tensorflow_model_server`'s mean what they mean there. The server serves
the versions the policy wants and follows the base path (checked every
--file_system_poll_wait_seconds); it binds 127.0.0.1 unless told otherwise; and on SIGTERM or
SIGINT it stops accepting, finishes every request it has received (at most
--shutdown_grace_seconds) and exits 0. See docs/serving.md.
"""

import argparse
import logging
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time

from tfnn import validation
from tfnn.cli.flags import OneLineParser, boolean, non_negative_float, non_negative_int, port
from tfnn.serving import confinement
from tfnn.serving.policy import Policy

log = logging.getLogger("tfnn.serving")


def _policy(text):
    try:
        return Policy.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _cpu(text):
    """--python_threads_cpu's type: "auto" or an integer (its range is checked by serve)."""
    if text == confinement.AUTO:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"Expected auto, -1 or a CPU's number. Received: {text!r}"
        ) from None


def parser():
    p = OneLineParser(
        prog="tfnn-serve",
        description=__doc__.split("\n\n")[0],
    )
    add = p.add_argument
    add("--model_name", default="default", help="the model's name in request URLs")
    add(
        "--model_base_path",
        required=True,
        help="the folder of integer version folders (required)",
    )
    add(
        "--model_version_policy",
        type=_policy,
        default="latest:1",
        help="latest:N (the N highest versions that load), specific:V,V,… or all",
    )
    add("--rest_api_port", type=port, default=8501, help="0: any free port")
    add("--rest_api_host", default="127.0.0.1", help="the address to bind")
    add(
        "--file_system_poll_wait_seconds",
        type=non_negative_float,
        default=1.0,
        help="how often to look for new, replaced and removed versions (0: never)",
    )
    add(
        "--max_retry_seconds",
        type=non_negative_float,
        default=300.0,
        help="the longest wait before loading a failed version again (waits double from 1 s)",
    )
    add(
        "--rest_api_num_threads",
        type=non_negative_int,
        default=16,
        help="worker threads: the most requests handled at once",
    )
    add(
        "--max_connections",
        type=non_negative_int,  # 0 is refused by serve(), as --rest_api_num_threads 0
        default=4096,
        help="the most open connections; more wait in the listen backlog",
    )
    add(
        "--idle_timeout_seconds",
        type=non_negative_float,
        default=30.0,
        help="a connection without activity for this long is closed",
    )
    add(
        "--max_header_bytes",
        type=non_negative_int,
        default=16 * 2**10,
        help="request line and headers together; more get 431",
    )
    add(
        "--max_request_bytes",
        type=non_negative_int,
        default=16 * 2**20,
        help="request body, Content-Length or chunked; more get 413",
    )
    add(
        "--max_request_rows",
        type=non_negative_int,
        default=10_000,
        help="examples in one predict request; more get 413",
    )
    add(
        "--shutdown_grace_seconds",
        type=non_negative_float,
        default=30.0,
        help="on SIGTERM/SIGINT, the longest wait for received requests to finish",
    )
    add(
        "--tensorflow_intra_op_parallelism",
        type=non_negative_int,
        default=1,
        help=(
            "threads one TensorFlow op may use (0: TensorFlow's choice, the cores). 1: a "
            "request of a few rows is answered sooner, one of thousands of rows later. See "
            "docs/serving.md"
        ),
    )
    add(
        "--tensorflow_inter_op_parallelism",
        type=non_negative_int,
        default=0,
        help="TensorFlow ops that may run at once (0: TensorFlow's choice)",
    )
    add(
        "--python_threads_cpu",
        type=_cpu,
        default=confinement.AUTO,
        help="the one CPU for the server's Python threads, confined after the models load "
        "(TensorFlow's thread pools keep every CPU); auto: the last CPU, moved to a free one "
        "when other work keeps it busy (not confined with one CPU); -1: not confined. See "
        "docs/serving.md",
    )
    add(
        "--enable_batching",
        type=boolean,
        nargs="?",
        const=True,
        default=True,
        metavar="{true,false}",
        help="merge concurrent predict requests to one version into one model call; a lone "
        "request runs at once (--enable_batching=false: one model call per request)",
    )
    add(
        "--max_batch_size",
        type=non_negative_int,
        default=64,
        help="with batching: the most rows in one model call",
    )
    add(
        "--batch_timeout_micros",
        type=non_negative_int,
        default=0,
        help="with batching: the longest a request waits for others to join (0: no wait)",
    )
    add(
        "--num_batch_threads",
        type=non_negative_int,
        default=1,
        help="with batching: how many batches run at once",
    )
    return p


def serve(
    *,
    model_name,
    model_base_path,
    model_version_policy=None,
    file_system_poll_wait_seconds=1.0,
    max_retry_seconds=300.0,
    max_request_rows=10_000,
    shutdown_grace_seconds=30.0,
    enable_batching=True,
    max_batch_size=64,
    batch_timeout_micros=0,
    num_batch_threads=1,
    tensorflow_intra_op_parallelism=1,
    tensorflow_inter_op_parallelism=0,
    python_threads_cpu=confinement.AUTO,
    stopping=None,
    **http_options,
):
    """Serves `model_name` until SIGTERM/SIGINT (or until the event `stopping` is set), then
    drains. Raises ValueError when no version loads, OSError when the address is not usable.
    The keyword arguments are the flags of `tfnn-serve --help`; `http_options` are those of
    `wsgi.Server` (rest_api_host, rest_api_port, rest_api_num_threads, max_connections,
    idle_timeout_seconds, max_header_bytes, max_request_bytes)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Imported here, after the flags are checked: TensorFlow's import takes ~4 s.
    import tensorflow as tf

    from tfnn.serving.app import application
    from tfnn.serving.batching import Batcher
    from tfnn.serving.metrics import RequestMetrics
    from tfnn.serving.repository import ModelRepository
    from tfnn.serving.wsgi import Server

    # Checked before the slow part, loading the models.
    if not model_name or "/" in model_name or ":" in model_name:  # else no URL reaches it
        validation.fail(
            "model_name", model_name, "a name without '/' or ':' (the <name> of /v1/models/<name>)"
        )
    validation.integer("max_request_rows", max_request_rows, low=1)
    # 0 threads or connections: the server would start and leave every client waiting;
    # 0 bytes of headers or body: it would answer every request (every predict) 431 (413)
    for name in (
        "rest_api_num_threads",
        "max_connections",
        "max_header_bytes",
        "max_request_bytes",
    ):
        if name in http_options:  # else wsgi.Server's default
            validation.integer(name, http_options[name], low=1)
    validation.integer("max_batch_size", max_batch_size, low=1)
    validation.integer("batch_timeout_micros", batch_timeout_micros, low=0)
    validation.integer("num_batch_threads", num_batch_threads, low=1)
    confinement.check_cpu(python_threads_cpu)
    threads = [
        (
            "tensorflow_intra_op_parallelism",
            tensorflow_intra_op_parallelism,
            tf.config.threading.set_intra_op_parallelism_threads,
            tf.config.threading.get_intra_op_parallelism_threads,
        ),
        (
            "tensorflow_inter_op_parallelism",
            tensorflow_inter_op_parallelism,
            tf.config.threading.set_inter_op_parallelism_threads,
            tf.config.threading.get_inter_op_parallelism_threads,
        ),
    ]
    for name, count, set_threads, get_threads in threads:
        if count:  # 0: TensorFlow's choice, or what this process already uses
            try:
                set_threads(count)  # the same count again is no change
            except RuntimeError:  # TensorFlow has already run an op in this process
                raise ValueError(
                    f"{name}={count} can only be set before TensorFlow runs its first op in "
                    f"a process; this one runs with {get_threads()} (0 keeps it)"
                ) from None
    metrics = RequestMetrics()
    # Loading runs TensorFlow ops, so its thread pools exist before any confinement.
    repository = ModelRepository(
        model_name, model_base_path, model_version_policy, max_retry_seconds=max_retry_seconds
    )
    cpu, follow = confinement.choose(python_threads_cpu, confinement.confinable_cpus())
    if follow:
        try:
            others = confinement.pinned(cpu) - {threading.get_native_id()}
        except OSError as error:  # no /proc/self/task to list: confined, but not followed
            log.warning("Python threads stay on CPU %d: %s", cpu, error)
            follow = False
    with confinement.confine_python_threads(cpu):
        batcher = None
        if enable_batching:
            observe = metrics.batch_size.observe
            batcher = Batcher(max_batch_size, batch_timeout_micros, num_batch_threads, observe)
        app = application(repository, max_request_rows, batcher, metrics)
        server = Server(app, **http_options)
        stopping = stopping or threading.Event()

        def poll():
            while not stopping.wait(file_system_poll_wait_seconds):
                try:
                    repository.poll()
                except Exception:  # noqa: BLE001 — keep serving the versions we have
                    log.exception("could not poll %s", model_base_path)

        if file_system_poll_wait_seconds > 0:
            threading.Thread(target=poll, name="tfnn-poll", daemon=True).start()
        if follow:
            follower = confinement.Follower(cpu, confinement.confinable_cpus(), others=others)
            threading.Thread(
                target=_follow, args=(follower, stopping), name="tfnn-cpu", daemon=True
            ).start()
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, lambda *_: stopping.set())
        versions = [
            int(entry["version"])
            for entry in repository.status(model_name)
            if entry["state"] == "AVAILABLE"
        ]
        log.info(
            "serving %s versions %s at %s",
            model_name,
            versions,
            model_url(server.host, server.port, model_name),
        )
        server.serve_until(stopping)
        log.info("draining: no new connections; finishing received requests")
        busy = server.drain(shutdown_grace_seconds)
        if batcher is not None:
            batcher.stop()
    log.info("stopped" + (f" ({busy} connections still busy after the grace time)" if busy else ""))


def _follow(follower, stopping, seconds=1.0):
    """Steps `follower` every `seconds` until `stopping` is set, logging each move."""
    while not stopping.wait(seconds):
        before = follower.cpu
        try:
            after = follower.step()
        except Exception:  # noqa: BLE001 — keep serving where the threads are
            log.exception(
                "could not read how busy the CPUs are; Python threads stay on CPU %d", before
            )
            return
        if after != before:
            log.info(
                "Python threads moved from CPU %d to CPU %d: other work kept it busy", before, after
            )


def model_url(host, port, model_name):
    """The model's base URL on `host`:`port` (an IPv6 address in brackets, RFC 3986)."""
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/v1/models/{model_name}"


def spawn(model_name, model_base_path, *flags, timeout=60):
    """Starts `tfnn-serve` in a child process on a free loopback port and waits until it
    serves; returns (the process, its base URL "http://127.0.0.1:<port>").

    The server's stderr keeps being read into `process.log` (a list of lines),
    so it never blocks on a full pipe. Stop it with
    `process.send_signal(signal.SIGTERM)`; it exits 0.
    """
    command = [sys.executable, "-m", "tfnn.serving.server", "--model_name", model_name]
    command += ["--model_base_path", str(model_base_path), "--rest_api_port", "0", *flags]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    # The pipe is read on a thread, so the deadline holds for a child that prints nothing.
    lines, received, started = [], queue.Queue(), threading.Event()
    process.log = lines

    def read():
        for line in process.stderr:
            lines.append(line)
            if not started.is_set():  # once it serves, only the log keeps its lines
                received.put(line)
        received.put(None)  # the child closed its stderr

    threading.Thread(target=read, daemon=True).start()
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = received.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        if line.startswith(f"tfnn-serve: serving {model_name} "):
            started.set()
            return process, line.split(" at ")[1].split("/v1/")[0]
    process.kill()
    process.wait()
    raise RuntimeError(f"tfnn-serve did not start: {''.join(lines)[-2000:]}")


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    if not pathlib.Path(args.model_base_path).is_dir():
        p.error(f"argument --model_base_path: {args.model_base_path!r} is not a folder")
    handler = logging.StreamHandler()  # on sys.stderr
    handler.setFormatter(logging.Formatter("tfnn-serve: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is N"
    try:
        serve(**vars(args))
    except ValueError as error:  # no version to serve, or a value out of range
        p.error(str(error))
    except OSError as error:  # the address is taken or not ours
        reason = error.strerror or error
        p.error(f"cannot listen on {args.rest_api_host}:{args.rest_api_port}: {reason}")


if __name__ == "__main__":
    main()
