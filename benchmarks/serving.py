"""Latency and throughput of tfnn-serve against calling the SavedModel in process.

The default CNN of train.py (MNIST-1D inputs [40], untrained: the time does not
depend on the weights) is exported with tfnn.export and served by
`tfnn-serve` in a separate process on loopback.

1. Latency of a one-instance predict: `{"instances": [x]}` POSTed over one
   keep-alive HTTP connection, against `signatures["serving_default"]` called
   on the same example in this process. Blocks of each alternate; p50 and
   p99 over all requests. Goal: p50 overhead of HTTP ≤ 2 ms.
2. Requests per second with 1, 4 and 16 concurrent clients (threads of this
   process, each with its own keep-alive connection, one instance per request).

    python benchmarks/serving.py
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfnn import data, export  # noqa: E402
from tfnn.models.cnn import cnn  # noqa: E402
from tfnn.recipe.options import DEFAULT_CNN  # noqa: E402
from tfnn.serving.server import spawn  # noqa: E402


def percentile(values, q):
    return float(np.percentile(values, q))


def http_client(port):
    connection = http.client.HTTPConnection("127.0.0.1", port)

    def predict(body):
        connection.request(
            "POST", "/v1/models/bench:predict", body, {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(payload)
        return payload

    return predict


def client(port, body, deadline):
    """One client on its own connection until `deadline`; its latencies in ms."""
    ask = http_client(port)
    latencies = []
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        ask(body)
        latencies.append(1e3 * (time.perf_counter() - start))
    return latencies


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="latency samples per route")
    parser.add_argument("--seconds", type=float, default=5.0, help="per concurrency level")
    args = parser.parse_args(argv)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 40)).astype("float32")
    keras.utils.set_random_seed(0)
    model = cnn(rng.normal(size=(100, 40)).astype("float32"), 10, DEFAULT_CNN)
    folder = tempfile.mkdtemp()
    path = export.export(model, folder, "bench", data.Task(data.CLASSES, 10))
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    process, url = spawn("bench", path.parent)
    port = int(url.rsplit(":", 1)[1])
    try:
        predict = http_client(port)
        body = json.dumps({"instances": x.tolist()})
        expected = served(inputs=tf.constant(x))["probabilities"].numpy()
        answer = json.loads(predict(body))["predictions"]
        np.testing.assert_allclose(answer, expected, rtol=1e-6, atol=1e-7)

        def in_process():
            served(inputs=tf.constant(x))["probabilities"].numpy()

        def over_http():
            json.loads(predict(body))

        for call in (in_process, over_http):  # warm up
            for _ in range(50):
                call()
        times = {in_process: [], over_http: []}
        block = 100
        for _ in range(args.requests // block):
            for call, samples in times.items():
                for _ in range(block):
                    start = time.perf_counter()
                    call()
                    samples.append(1e3 * (time.perf_counter() - start))
        local, remote = times[in_process], times[over_http]
        print("| call | p50 (ms) | p99 (ms) |")
        print("|---|---:|---:|")
        print(
            f"| SavedModel in process | {percentile(local, 50):.3f} | {percentile(local, 99):.3f} |"
        )
        p50, p99 = percentile(remote, 50), percentile(remote, 99)
        print(f"| tfnn-serve over HTTP | {p50:.3f} | {p99:.3f} |")
        print(
            f"\nHTTP overhead at p50: {percentile(remote, 50) - percentile(local, 50):.3f} ms "
            f"({len(local)} requests each)\n"
        )

        print("| concurrent clients | requests/s | p50 latency (ms) |")
        print("|---:|---:|---:|")
        for clients in (1, 4, 16):
            start = time.perf_counter()
            deadlines = [start + args.seconds] * clients
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                runs = pool.map(client, [port] * clients, [body] * clients, deadlines)
                latencies = [t for run in runs for t in run]
            elapsed = time.perf_counter() - start
            print(
                f"| {clients} | {len(latencies) / elapsed:,.0f} "
                f"| {statistics.median(latencies):.2f} |"
            )
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
