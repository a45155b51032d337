"""tfnn-serve against calling the same SavedModel in process, in one run.

The default CNN of train.py (MNIST-1D inputs [40], untrained: the time does not depend on the
weights) is exported with tfnn.export and served by `tfnn-serve` in a separate process on
loopback; clients are threads of this process, each with its own keep-alive connection, one
instance per request (`lean_client`: a minimal HTTP/1.1 client, so that the clients take little
of the two cores the server needs).

1. Throughput: requests per second with 16 concurrent clients against the in-process rate of
   `signatures["serving_default"]` called one request at a time, in interleaved rounds (so a
   change in the machine's other load touches both), with the cores the server's threads and
   the clients used meanwhile. Goal: ≥ 1.5× with no tuning flag. Servers: the defaults
   (batching on, the Python threads on one CPU chosen by --python_threads_cpu auto, one
   TensorFlow thread an op); TensorFlow's thread choice (--tensorflow_intra_op_parallelism 0),
   with batching on and off; batching off; the Python threads not confined (-1); the first
   defaults (all three off); the whole server process on one CPU from its start; and, with a
   busy loop spinning on the CPU auto picks first, the defaults against threads not confined
   (auto must move off that CPU). For
   reference, the in-process rate of a process confined to one CPU from its start, so that
   TensorFlow's own hand-offs stay on one CPU too (in a child process).
2. Latency of one client for each server above but the whole-process one: blocks of
   in-process calls and HTTP requests alternate; p50 and p99 of each, and the overhead of
   HTTP at p50. Goal: ≤ 0.5 ms.
3. Memory: the server's RSS idle, at its peak and after four concurrent 100,000-row requests,
   which the row cap refuses (the server runs with --max_request_bytes 256 MiB so that the
   bodies are read and parsed first). Goal: after − idle ≤ 300 MiB.
4. Threads: the server's thread count idle and with 1,500 idle connections open.

    python benchmarks/serving.py
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import pathlib
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfnn import data, export  # noqa: E402
from tfnn.models.cnn import cnn  # noqa: E402
from tfnn.recipe.options import DEFAULT_CNN  # noqa: E402
from tfnn.serving.confinement import confine_python_threads  # noqa: E402
from tfnn.serving.server import spawn  # noqa: E402

PATH = "/v1/models/bench:predict"


def export_model(rng):
    """The default CNN (untrained, its input statistics from `rng`) exported to a new folder;
    the path of its version."""
    keras.utils.set_random_seed(0)
    model = cnn(rng.normal(size=(100, 40)).astype("float32"), 10, DEFAULT_CNN)
    return export.export(model, tempfile.mkdtemp(), "bench", data.Task(data.CLASSES, 10))


def percentile(values, q):
    return float(np.percentile(values, q))


def proc_status(pid, field):
    """A number from /proc/<pid>/status: VmRSS and VmHWM in MiB, Threads as a count."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            value = int(line.split()[1])
            return value / 1024 if line.endswith("kB") else value
    raise KeyError(field)


def http_client(port, timeout=120):
    """A function POSTing a body to the predict URL over one keep-alive connection; it
    returns (status, response body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def predict(body):
        connection.request("POST", PATH, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()

    return predict


def lean_client(port, body):
    """A minimal HTTP/1.1 keep-alive client for load: the request is encoded once and each
    response read by its Content-Length, so the client's own CPU time stays small (the server
    and the clients share this machine's cores). Returns a function body → (status, body)."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=120)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream = connection.makefile("rb")
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()

    def predict():
        connection.sendall(request)
        status = int(stream.readline().split()[1])
        length = 0
        while (line := stream.readline()) != b"\r\n":
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, stream.read(length)

    return predict


def client(port, body, deadline):
    """One client on its own connection until `deadline`; its latencies in ms."""
    ask = lean_client(port, body)
    latencies = []
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        status, payload = ask()
        if status != 200:
            raise RuntimeError(payload)
        json.loads(payload)
        latencies.append(1e3 * (time.perf_counter() - start))
    return latencies


def throughput(port, body, clients, seconds):
    """Requests per second of `clients` concurrent clients over `seconds`."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        runs = pool.map(client, [port] * clients, [body] * clients, [start + seconds] * clients)
        count = sum(len(run) for run in runs)
    return count / (time.perf_counter() - start)


def thread_cpu_seconds(pid):
    """CPU seconds (user + system) so far of process `pid`'s threads: those TensorFlow names
    tf_* and all others, as (tf_*, others)."""
    tensorflow = other = 0.0
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if name.startswith("tf_"):
            tensorflow += seconds
        else:
            other += seconds
    return tensorflow, other


def measured_throughput(pid, port, body, clients, seconds):
    """`throughput` and the cores used meanwhile: (req/s, server tf_* threads, server's other
    threads, this process's clients)."""
    server, mine, start = thread_cpu_seconds(pid), time.process_time(), time.perf_counter()
    rate = throughput(port, body, clients, seconds)
    elapsed = time.perf_counter() - start
    used = [
        (after - before) / elapsed
        for after, before in zip(thread_cpu_seconds(pid), server, strict=True)
    ]
    return rate, *used, (time.process_time() - mine) / elapsed


def stop(process):
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def port_of(url):
    return int(url.rsplit(":", 1)[1])


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=2000, help="latency samples per route")
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput measurement")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per server")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of each large request")
    parser.add_argument("--connections", type=int, default=1500, help="idle connections")
    args = parser.parse_args(argv)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 40)).astype("float32")
    path = export_model(rng)
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    body = json.dumps({"instances": x.tolist()})
    expected = served(inputs=tf.constant(x))["probabilities"].numpy()

    def in_process():
        served(inputs=tf.constant(x))["probabilities"].numpy()

    def local_rate(seconds):
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            in_process()
            count += 1
        return count / (time.perf_counter() - start)

    local_rate(1.0)  # warm up
    print(
        f"\n16 concurrent clients against the in-process rate; {args.rounds} interleaved rounds "
        f"of {args.seconds:g} s each way, medians:\n"
    )
    print(
        "| server | in process, one at a time (req/s) | over HTTP (req/s) | ratio "
        "| server's tf_* threads (cores) | server's other threads (cores) | clients (cores) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    latency, best, moves = {}, 0.0, []
    last_cpu = max(os.sched_getaffinity(0))
    not_confined = ["--python_threads_cpu", "-1"]
    off = ["--enable_batching=false"]
    choice = ["--tensorflow_intra_op_parallelism", "0"]  # TensorFlow's thread choice
    settings = {  # name: (flags, the one CPU of the whole server process or -1, a busy loop's CPU)
        "the defaults: batching on, Python threads on one CPU (auto), one thread an op": (
            [],
            -1,
            None,
        ),
        "TensorFlow's thread choice (`--tensorflow_intra_op_parallelism 0`)": (choice, -1, None),
        "batching off": (off, -1, None),
        "batching off, TensorFlow's thread choice": ([*off, *choice], -1, None),
        "batching on, Python threads not confined": (not_confined, -1, None),
        "batching off, Python threads not confined, TensorFlow's thread choice (the first "
        "defaults)": ([*off, *not_confined, *choice], -1, None),
        "batching on, whole server on one CPU": (not_confined, last_cpu, None),
        f"the defaults, a busy loop on CPU {last_cpu}": ([], -1, last_cpu),
        f"Python threads not confined, a busy loop on CPU {last_cpu}": (
            not_confined,
            -1,
            last_cpu,
        ),
    }
    for name, (flags, whole_server_cpu, busy_cpu) in settings.items():
        loop = busy_loop(busy_cpu)
        with confine_python_threads(whole_server_cpu):  # the child inherits it at its start
            process, url = spawn("bench", path.parent, *flags)
        port = port_of(url)
        try:
            predict = lean_client(port, body)
            status, payload = predict()
            assert status == 200, payload
            np.testing.assert_allclose(json.loads(payload)["predictions"], expected, rtol=1e-6)
            throughput(port, body, 16, 3.0 if loop else 1.0)  # warm up (auto moves in ~2 s)
            rounds = [
                (
                    local_rate(args.seconds),
                    *measured_throughput(process.pid, port, body, 16, args.seconds),
                )
                for _ in range(args.rounds)
            ]
            local, remote, tensorflow, other, clients = np.median(rounds, axis=0)
            ratio = np.median([over / alone for alone, over, *_ in rounds])
            print(
                f"| {name} | {local:,.0f} | {remote:,.0f} | {ratio:.2f} | {tensorflow:.2f} "
                f"| {other:.2f} | {clients:.2f} |"
            )
            if loop is None:
                best = max(best, remote)
            if whole_server_cpu == -1:
                latency[name] = one_client(predict, in_process, args.requests)
        finally:
            stop(process)
            if loop is not None:
                loop.kill()
                loop.wait()
        moved = [line.strip() for line in process.log if "Python threads moved" in line]
        if loop is not None:
            moves.append(f"{name}: {'; '.join(moved) or 'no move logged'}")

    print("", *moves, sep="\n")
    confined = confined_rate(path, x, args.seconds, args.rounds)
    print(
        f"\nFor reference: in process, one at a time, in a process confined to one CPU from its "
        f"start: {confined:,.0f} req/s (median of {args.rounds} × {args.seconds:g} s); "
        f"the fastest server above: {best / confined:.2f}× that"
    )
    print("\n| one client | in process p50 (ms) | p99 | over HTTP p50 (ms) | p99 | overhead |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, samples in latency.items():
        local, remote = samples["in process"], samples["over HTTP"]
        overhead = percentile(remote, 50) - percentile(local, 50)
        print(
            f"| {name} | {percentile(local, 50):.3f} | {percentile(local, 99):.3f} "
            f"| {percentile(remote, 50):.3f} | {percentile(remote, 99):.3f} | {overhead:.3f} |"
        )
    print(f"\n({args.requests} requests each way, in alternating blocks of 100)")
    memory(path, args.rows)
    threads(path, args.connections)


CONFINED = """
import json, os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})  # before TensorFlow starts its threads
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tensorflow as tf
served = tf.saved_model.load(sys.argv[2]).signatures["serving_default"]
x = np.asarray(json.loads(sys.argv[3]), dtype="float32")
rates = []
for seconds in [1.0] + [float(sys.argv[4])] * int(sys.argv[5]):  # the first warms up
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        served(inputs=tf.constant(x))["probabilities"].numpy()  # as in_process() does
        count += 1
    rates.append(count / (time.perf_counter() - start))
print(float(np.median(rates[1:])))
"""


def busy_loop(cpu):
    """A child process spinning on `cpu` (None: none), as other work on the machine would."""
    if cpu is None:
        return None
    spin = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    return subprocess.Popen([sys.executable, "-c", spin])


def confined_rate(path, x, seconds, rounds):
    """The in-process one-at-a-time rate in a child process confined to one CPU."""
    cpu = str(max(os.sched_getaffinity(0)))
    command = [sys.executable, "-c", CONFINED, cpu, str(path), json.dumps(x.tolist())]
    command += [str(seconds), str(rounds)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout.split()[-1])


def one_client(predict, in_process, requests, block=100):
    """Latencies in ms of alternating blocks of in-process calls and HTTP requests."""

    def over_http():
        json.loads(predict()[1])

    for call in (in_process, over_http):  # warm up
        for _ in range(50):
            call()
    times = {"in process": [], "over HTTP": []}
    for _ in range(requests // block):
        for call, samples in zip((in_process, over_http), times.values(), strict=True):
            for _ in range(block):
                start = time.perf_counter()
                call()
                samples.append(1e3 * (time.perf_counter() - start))
    return times


def memory(path, rows):
    """The server's RSS idle, at peak and after four concurrent requests of `rows` rows."""
    process, url = spawn("bench", path.parent, "--max_request_bytes", str(256 * 2**20))
    try:
        ask = http_client(port_of(url))
        ask(json.dumps({"instances": np.zeros((1, 40)).tolist()}))
        time.sleep(1)
        idle = proc_status(process.pid, "VmRSS")
        x = np.random.default_rng(1).normal(size=(rows, 40)).astype("float32")
        big = json.dumps({"instances": x.tolist()})
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda b: http_client(port_of(url))(b), [big] * 4))
        time.sleep(1)
        after = proc_status(process.pid, "VmRSS")
        peak = proc_status(process.pid, "VmHWM")
        statuses = sorted({status for status, _ in answers})
        message = json.loads(answers[0][1]).get("error", "")
        print(
            f"\nMemory: four concurrent {rows:,}-row requests ({len(big) / 2**20:.0f} MiB each) "
            f"→ HTTP {statuses} {message!r}\n"
            f"RSS idle {idle:,.0f} MiB, peak {peak:,.0f} MiB, after {after:,.0f} MiB: "
            f"after − idle = {after - idle:,.0f} MiB"
        )
    finally:
        stop(process)


def threads(path, connections):
    """The server's threads idle and with `connections` idle connections open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, connections + 256)), hard))
    process, url = spawn("bench", path.parent)
    sockets = []
    try:
        idle = proc_status(process.pid, "Threads")
        for _ in range(connections):
            sockets.append(socket.create_connection(("127.0.0.1", port_of(url)), timeout=10))
        time.sleep(2)
        busy = proc_status(process.pid, "Threads")
        status, _ = http_client(port_of(url))(json.dumps({"instances": np.zeros((1, 40)).tolist()}))
        print(
            f"\nThreads: {idle} idle; {busy} with {connections:,} idle connections open "
            f"(a request meanwhile: HTTP {status})"
        )
    finally:
        for s in sockets:
            s.close()
        stop(process)


if __name__ == "__main__":
    main()
