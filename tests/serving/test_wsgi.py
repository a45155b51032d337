"""The HTTP server in process, over loopback: its settings, protocol errors in JSON, the
graceful close after them, the drain, and the open-file limit."""

import contextlib
import inspect
import json
import resource
import socket
import threading
import types

import pytest

from tfnn.serving import server as command
from tfnn.serving import wsgi
from tfnn.serving.wsgi import Server


def echo(environ, start_response):
    """Answers {"path", "bytes"} of the request; a request to a path in GATES signals that it
    started and waits for its release."""
    body = environ["wsgi.input"].read()
    if environ["PATH_INFO"] == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _Written([b"0" * BIG])
    gate = GATES.get(environ["PATH_INFO"])
    if gate is not None:
        gate["started"].set()
        gate["release"].wait(timeout=WAIT)
    data = json.dumps({"path": environ["PATH_INFO"], "bytes": len(body)}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


# Every wait is bounded, so a server that hangs fails a test within seconds; on loopback and in
# process nothing here takes more than a fraction of one.
WAIT = 5
GATES = {}  # path → {"started", "release"} events: requests to the path wait for "release"
BIG = 8 * 2**20  # the size of /big's body
WRITTEN = threading.Event()  # set once waitress has taken all of /big's body


class _Written(list):
    def close(self):  # waitress calls it after writing the body
        WRITTEN.set()


@contextlib.contextmanager
def serving(grace_seconds=30.0, **options):
    """A `Server` over `echo` on a free loopback port, its loop in a thread; on exit it is
    drained, and `result["busy"]` holds what `drain` returned."""
    server = Server(echo, rest_api_port=0, **options)
    stopping, result = threading.Event(), {}

    def run():
        server.serve_until(stopping, poll_seconds=0.05)
        result["busy"] = server.drain(grace_seconds)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield server, stopping, result
    finally:
        stopping.set()
        thread.join(timeout=WAIT)
        assert not thread.is_alive()


def connection(server):
    return socket.create_connection((server.host, server.port), timeout=WAIT)


def receive_all(sock):
    """Everything until the server closes the connection."""
    received = b""
    while chunk := sock.recv(2**16):
        received += chunk
    return received


def parse(response):
    """(status line, {header: value}, body) of one raw response."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, body


def exchange(server, data):
    with connection(server) as sock:
        sock.sendall(data)
        return parse(receive_all(sock))


def get(path):
    return b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode()


def test_a_request_is_answered_by_the_application_with_the_servers_name():
    with serving() as (server, _, _):
        status, headers, body = exchange(server, get("/hello"))
    assert status == "HTTP/1.1 200 OK" and headers["Server"] == "tfnn-serve"
    assert json.loads(body) == {"path": "/hello", "bytes": 0}


def test_the_server_binds_loopback_by_default_and_reports_the_port_it_got():
    server = Server(echo, rest_api_port=0)
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        assert server._server.socket.getsockname() == ("127.0.0.1", server.port)
    finally:
        server.drain(0)


def test_the_defaults_are_tfnn_serves_flag_defaults():
    server = Server(echo, rest_api_port=0)
    server.drain(0)
    flags = command.parser().parse_args(["--model_base_path", "."])
    adj = server._server.adj
    assert (adj.threads, adj.connection_limit) == (
        flags.rest_api_num_threads,
        flags.max_connections,
    )
    assert adj.channel_timeout == flags.idle_timeout_seconds
    assert (adj.max_request_header_size, adj.max_request_body_size) == (  # wsgi.LIMITS
        flags.max_header_bytes + 1,
        flags.max_request_bytes + 1,
    )
    assert server.host == flags.rest_api_host
    port = inspect.signature(Server).parameters["rest_api_port"].default
    assert port == flags.rest_api_port  # not bound here: the port may be taken


def test_the_loop_polls_the_servers_sockets_one_turn_per_look_at_stopping(monkeypatch):
    """Catches serve_until's loop turn with select() (`use_poll` dropped, None or False: it
    cannot watch more than 1,024 sockets), on another map, with more than one turn between
    looks at `stopping` (`count`), or waiting longer than `poll_seconds` (0.2 s by default)."""
    server = Server(echo, rest_api_port=0)
    stopping, turns = threading.Event(), []

    def loop(**arguments):
        turns.append(arguments)
        if len(turns) == 2:
            stopping.set()

    monkeypatch.setattr(wsgi.wasyncore, "loop", loop)
    server.serve_until(stopping)
    monkeypatch.undo()
    server.drain(0)
    assert turns == [{"timeout": 0.2, "map": server._map, "use_poll": True, "count": 1}] * 2


def test_drain_turns_the_loop_with_poll_every_50_ms_and_waits_1_s_for_the_workers(monkeypatch):
    """Catches drain's loop turns with select() (`use_poll`), several turns between looks at
    the deadline (`count`), another wait than 50 ms per turn, and the worker threads' shutdown
    waiting another time than 1 s or keeping the queued requests (`cancel_pending`)."""
    server = Server(echo, rest_api_port=0)
    loop, turns, stops = wsgi.wasyncore.loop, [], []
    client = connection(server)
    loop(timeout=WAIT, map=server._map, use_poll=True, count=1)  # accepts the connection
    monkeypatch.setattr(
        wsgi.wasyncore, "loop", lambda **arguments: turns.append(arguments) or loop(**arguments)
    )
    dispatcher = server._server.task_dispatcher
    shutdown = dispatcher.shutdown
    monkeypatch.setattr(
        dispatcher, "shutdown", lambda **arguments: stops.append(arguments) or shutdown(**arguments)
    )
    with client:
        assert server.drain(WAIT) == 0
        assert client.recv(1) == b""  # the idle connection was closed
    assert turns and all(
        turn == {"timeout": 0.05, "map": server._map, "use_poll": True, "count": 1}
        for turn in turns
    )
    assert stops == [{"cancel_pending": True, "timeout": 1}]


def test_the_flags_reach_waitress():
    server = Server(
        echo,
        rest_api_port=0,
        rest_api_num_threads=3,
        max_connections=7,
        idle_timeout_seconds=11.0,
        max_header_bytes=1000,
        max_request_bytes=2000,
    )
    server.drain(0)
    adj = server._server.adj
    assert (adj.threads, adj.connection_limit, adj.channel_timeout) == (3, 7, 11.0)
    assert (adj.max_request_header_size, adj.max_request_body_size) == (1001, 2001)


@pytest.mark.parametrize(
    "idle, interval",
    [(100.0, 30), (62.0, 30), (60.0, 30), (59.0, 29), (10.0, 5), (4.0, 2), (3.9, 1), (0.5, 1)],
)
def test_idle_connections_are_looked_for_every_half_idle_timeout_from_1_to_30_s(idle, interval):
    server = Server(echo, rest_api_port=0, idle_timeout_seconds=idle)
    server.drain(0)
    assert server._server.adj.cleanup_interval == interval


LIMIT = 1000
POST = b"POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"


def headers_of(size):
    """A request whose line and headers, blank line included, are `size` bytes."""
    start, end = b"GET / HTTP/1.1\r\nConnection: close\r\nX: ", b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


@pytest.mark.parametrize(
    "request_bytes, status, error",
    [
        (
            headers_of(LIMIT + 1),
            "431 Request Header Fields Too Large",
            "Request Header Fields Too Large: more than max_header_bytes=1000 bytes",
        ),
        (
            b"GET /" + b"a" * 2000,  # the request line alone, unfinished
            "431 Request Header Fields Too Large",
            "Request Header Fields Too Large: more than max_header_bytes=1000 bytes",
        ),
        (
            POST % (LIMIT + 1) + b"0" * (LIMIT + 1),
            "413 Request Entity Too Large",
            "Request Entity Too Large: more than max_request_bytes=1000 bytes",
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n" % (LIMIT, b"0" * LIMIT),
            "413 Request Entity Too Large",
            "Request Entity Too Large: more than max_request_bytes=1000 bytes",
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
            "400 Bad Request",
            "Bad Request: Invalid chunk size",
        ),
    ],
)
def test_protocol_errors_are_answered_in_json_and_the_connection_closed(
    request_bytes, status, error
):
    with serving(max_header_bytes=LIMIT, max_request_bytes=LIMIT) as (server, _, _):
        got_status, headers, body = exchange(server, request_bytes)
    assert got_status.split(" ", 1)[1] == status
    assert headers["Content-Type"] == "application/json" and headers["Connection"] == "close"
    assert headers["Content-Length"] == str(len(body))
    assert json.loads(body) == {"error": error}


def test_a_body_of_exactly_max_request_bytes_is_taken():
    with serving(max_request_bytes=LIMIT) as (server, _, _):
        status, _, body = exchange(server, POST % LIMIT + b"0" * LIMIT)
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["bytes"] == LIMIT


def test_headers_of_exactly_max_header_bytes_are_taken():
    with serving(max_header_bytes=LIMIT) as (server, _, _):
        status, _, body = exchange(server, headers_of(LIMIT))
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["path"] == "/"


def test_an_error_response_arrives_whole_while_the_client_is_still_sending():
    # Closing a socket with unread input sends a reset, which can destroy the response
    # before the client reads it: the server shuts its side and drops the rest instead.
    big = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (4 * 2**20)
    with serving(max_request_bytes=LIMIT) as (server, _, _), connection(server) as sock:
        sock.sendall(big + b"0" * 2**20)  # far more than the limit, and more to come
        threading.Event().wait(0.5)  # the server has answered and closed its side
        with contextlib.suppress(OSError):
            sock.sendall(b"0" * 2**20)
        status, headers, body = parse(receive_all(sock))
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert json.loads(body)["error"].startswith("Request Entity Too Large")


def test_after_an_error_a_client_that_keeps_sending_is_cut_off(monkeypatch):
    monkeypatch.setattr(wsgi, "LINGER_SECONDS", 0.2)
    with serving(max_header_bytes=LIMIT) as (server, _, _), connection(server) as sock:
        sock.sendall(b"GET /" + b"a" * 2000)
        answer = b""
        for _ in range(50):  # 5 s at most
            try:
                sock.sendall(b"a" * 1000)
                chunk = sock.recv(2**16) if not answer else b""
            except OSError:
                break
            answer += chunk
            threading.Event().wait(0.1)
        else:
            pytest.fail("the connection stayed open")
    assert answer.startswith(b"HTTP/1.0 431 ")  # the request line never ended


def test_keep_alive_answers_several_requests_on_one_connection():
    request = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
    with serving() as (server, _, _), connection(server) as sock:
        sock.sendall(request * 3 + get("/b"))
        answers = receive_all(sock).split(b"HTTP/1.1 200 OK")[1:]
    assert len(answers) == 4 and b'"path": "/b"' in answers[-1]


def test_drain_finishes_a_received_request_closes_idle_connections_and_stops_accepting():
    GATES["/slow"] = {"started": threading.Event(), "release": threading.Event()}
    try:
        with serving() as (server, stopping, result):
            idle = connection(server)
            busy = connection(server)
            busy.sendall(get("/slow"))
            assert GATES["/slow"]["started"].wait(timeout=WAIT)
            stopping.set()  # drain begins while /slow runs
            assert idle.recv(1) == b""  # the idle connection is closed
            GATES["/slow"]["release"].set()
            status, _, body = parse(receive_all(busy))
            assert status == "HTTP/1.1 200 OK" and json.loads(body)["path"] == "/slow"
            with pytest.raises(ConnectionRefusedError):
                connection(server)
        assert result["busy"] == 0
    finally:
        GATES.pop("/slow")
        idle.close()
        busy.close()


def test_drain_gives_up_after_the_grace_time_and_counts_the_busy_connections():
    GATES["/stuck"] = {"started": threading.Event(), "release": threading.Event()}
    try:
        with serving(grace_seconds=0.5) as (server, stopping, result):
            stuck = connection(server)
            stuck.sendall(get("/stuck"))
            assert GATES["/stuck"]["started"].wait(timeout=WAIT)
            stopping.set()
            threading.Event().wait(1.0)
        assert result["busy"] == 1
        assert server._map == {} and stuck.recv(1) == b""  # closed, busy or not
    finally:
        GATES["/stuck"]["release"].set()
        GATES.pop("/stuck")
        stuck.close()


@pytest.mark.parametrize(
    "soft, hard, wanted",
    [
        (1024, 65536, 1100 + 256),  # raised to what the connections need
        (1024, 1200, 1200),  # as far as the hard limit allows
        (1024, resource.RLIM_INFINITY, 1100 + 256),
        (1100 + 255, 65536, 1100 + 256),  # one short
        (1100 + 256, 65536, None),  # exactly enough: unchanged
        (resource.RLIM_INFINITY, resource.RLIM_INFINITY, None),
    ],
)
def test_the_open_file_limit_is_raised_to_hold_the_connections(monkeypatch, soft, hard, wanted):
    """Catches the limit raised at or past what the connections need (`<`, `+ 256`), past
    the hard limit, or read or set for another resource than open files (RLIMIT_NOFILE)."""
    calls = []
    monkeypatch.setattr(wsgi.resource, "getrlimit", lambda which: limits[which])
    monkeypatch.setattr(wsgi.resource, "setrlimit", lambda which, new: calls.append((which, new)))
    limits = {resource.RLIMIT_NOFILE: (soft, hard)}
    wsgi._allow_sockets(1100)
    assert calls == ([] if wanted is None else [(resource.RLIMIT_NOFILE, (wanted, hard))])


def wait_for(condition):
    """Whether `condition()` became true within WAIT seconds (checked every 10 ms)."""
    for _ in range(WAIT * 100):
        if condition():
            return True
        threading.Event().wait(0.01)
    return False


def test_after_an_error_the_connection_reads_and_drops_until_the_client_closes(monkeypatch):
    """Catches the error channel closing at once after an error response (not `linger`,
    `_until` unset or in the past, its sending side not shut alone, the loop not reading it or
    closing it on its next turn for writing): the client's further sends fail; and catches it
    not closing when the client closes (`not data` not checked, the channel not readable)."""
    monkeypatch.setattr(wsgi, "LINGER_SECONDS", 60.0)
    with serving(max_header_bytes=LIMIT) as (server, _, _), connection(server) as sock:
        sock.sendall(b"GET /" + b"a" * 2000)
        status, _, _ = parse(receive_all(sock))  # the server's sending side is shut
        for _ in range(3):
            sock.sendall(b"a" * 1000)
            threading.Event().wait(0.1)
        assert status == "HTTP/1.0 431 Request Header Fields Too Large"
        assert len(server._channels()) == 1
        sock.shutdown(socket.SHUT_WR)
        assert wait_for(lambda: not server._channels())


def test_after_an_error_a_silent_client_is_closed_by_the_idle_timeout(monkeypatch):
    """Catches `writable` while lingering not returning `will_close`: the idle timeout's
    `will_close` never reached the loop, and a silent client kept its connection for all of
    LINGER_SECONDS."""
    monkeypatch.setattr(wsgi, "LINGER_SECONDS", 60.0)
    options = {"max_header_bytes": LIMIT, "idle_timeout_seconds": 0.5}
    with serving(**options) as (server, _, _), connection(server) as sock:
        sock.sendall(b"GET /" + b"a" * 2000)
        assert parse(receive_all(sock))[0] == "HTTP/1.0 431 Request Header Fields Too Large"
        assert wait_for(lambda: not server._channels())


def test_drain_closes_a_connection_lingering_after_an_error(monkeypatch):
    """Catches drain's closing of idle connections not reaching a lingering one (`writable`
    while lingering not returning `will_close`): drain waited the whole grace time for it."""
    monkeypatch.setattr(wsgi, "LINGER_SECONDS", 60.0)
    with serving(max_header_bytes=LIMIT) as (server, stopping, result), connection(server) as sock:
        sock.sendall(b"GET /" + b"a" * 2000)
        receive_all(sock)
        stopping.set()
        assert wait_for(lambda: "busy" in result)
    assert result["busy"] == 0


def test_the_port_is_tfnn_serves_default_or_the_one_given(monkeypatch):
    """Catches the port not passed to waitress (its own default, 8080) or another default
    than --rest_api_port's."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    server = Server(echo, rest_api_port=free)
    server.drain(0)
    assert server.port == free
    given = {}

    def create_server(app, **options):
        given.update(options)
        return types.SimpleNamespace(effective_port=options["port"])

    monkeypatch.setattr(wsgi.waitress, "create_server", create_server)
    assert Server(echo).port == given["port"] == 8501


def test_a_response_the_socket_cannot_take_at_once_is_sent_whole_on_a_kept_connection():
    """Catches writable() not polling a connection with output left once its request has
    ended (`self.requests or ...`): the rest of a response larger than the socket buffers
    stayed unsent on a keep-alive connection."""
    WRITTEN.clear()
    with serving() as (server, _, _), socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2**16)  # far less than BIG
        sock.settimeout(WAIT)
        sock.connect((server.host, server.port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")  # and the connection kept
        assert WRITTEN.wait(WAIT)  # the request has ended: what is left is the loop's to send
        received = b""
        while len(received.partition(b"\r\n\r\n")[2]) < BIG:
            received += sock.recv(2**20)
    status, headers, body = parse(received)
    assert status == "HTTP/1.1 200 OK" and body == b"0" * BIG


def test_after_an_error_a_client_still_sending_is_cut_off_once_linger_seconds_have_passed(
    monkeypatch,
):
    """Catches the linger ending at LINGER_SECONDS (2 s) or before (`>=`, `-`): a read
    exactly at the deadline keeps the connection, the first read after it closes it."""
    now, reads = [100.0], []

    def monotonic():
        reads.append(now[0])
        return now[0]

    monkeypatch.setattr(wsgi, "time", types.SimpleNamespace(monotonic=monotonic))
    with serving(max_header_bytes=LIMIT) as (server, _, _), connection(server) as sock:
        sock.sendall(b"GET /" + b"a" * 2000)
        receive_all(sock)  # the linger began at 100.0
        now[0] = 100.0 + wsgi.LINGER_SECONDS
        for _ in range(2):  # the second read shows that the first one kept the connection
            count = len(reads)
            sock.sendall(b"a")
            assert wait_for(lambda: len(reads) > count)  # noqa: B023 — read at once
        now[0] += 0.001
        sock.sendall(b"a")
        assert wait_for(lambda: not server._channels())


def test_drain_waits_for_a_request_still_being_received(monkeypatch):
    """Catches drain taking a connection with a request received in part (`channel.request`)
    for idle and closing it: the rest of the request, sent after drain began, is answered."""
    real_loop, turns, servers = wsgi.wasyncore.loop, [], []

    def loop(**arguments):
        turns.append(not servers or servers[0]._server.accepting)  # False: drain has begun
        return real_loop(**arguments)

    monkeypatch.setattr(wsgi.wasyncore, "loop", loop)
    with serving() as (server, stopping, result), connection(server) as sock:
        servers.append(server)
        sock.sendall(POST % 10 + b"01234")
        assert wait_for(lambda: any(c.request for c in server._channels()))
        stopping.set()
        assert wait_for(lambda: turns.count(False) >= 2)  # two of drain's turns have passed
        sock.sendall(b"56789")
        status, _, body = parse(receive_all(sock))
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["bytes"] == 10
    assert result["busy"] == 0


def test_drain_stops_at_its_deadline(monkeypatch):
    """Catches drain taking another loop turn when its clock reads exactly the deadline
    (`<=`): with a clock that moves 1 s per reading and 2 s of grace, it turns once."""
    GATES["/held"] = {"started": threading.Event(), "release": threading.Event()}
    clock, turns = [0.0], []

    def monotonic():
        clock[0] += 1.0
        return clock[0]

    server = Server(echo, rest_api_port=0)
    held = connection(server)
    try:
        held.sendall(get("/held"))
        stopping = threading.Event()
        serving_thread = threading.Thread(target=server.serve_until, args=(stopping,))
        serving_thread.start()
        assert GATES["/held"]["started"].wait(timeout=WAIT)
        stopping.set()
        serving_thread.join(timeout=WAIT)
        real_loop = wsgi.wasyncore.loop
        monkeypatch.setattr(wsgi, "time", types.SimpleNamespace(monotonic=monotonic))
        monkeypatch.setattr(
            wsgi.wasyncore, "loop", lambda **a: turns.append(clock[0]) or real_loop(**a)
        )
        assert server.drain(2.0) == 1
        assert turns == [2.0]  # deadline 3.0: the reading 2.0 turns, the reading 3.0 stops
    finally:
        GATES["/held"]["release"].set()
        GATES.pop("/held")
        held.close()
