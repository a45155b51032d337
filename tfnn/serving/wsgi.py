"""The HTTP server: waitress, with JSON protocol errors and a graceful drain.

waitress reads each request whole (headers within `max_header_bytes`, the body within
`max_request_bytes` whether sent with Content-Length or chunked) on one event-loop thread, and
only then hands it to one of `threads` worker threads. A connection therefore costs a socket
and a buffer, never a thread, however long it idles or however slowly it sends; connections
beyond `max_connections` wait in the listen backlog, and a connection with no activity for
`idle_timeout_seconds` is closed. Keep-alive and pipelining are HTTP/1.1's.

Requests waitress refuses itself (a header block over the limit: 431, a body over the limit:
413, a request line or header it cannot parse: 400, chunked encoding errors: 400, …) are
answered `{"error": "<reason>: <detail>"}` as JSON, through waitress's error-task hook.

While a worker thread runs a request, it sends the response itself and the event loop does
not poll that connection for writing (waitress's loop would, and spin against the worker).

`drain()` stops accepting, closes idle connections, lets every received request finish and its
response be sent (at most `grace_seconds`), then stops the worker threads.
"""

import resource
import socket
import time

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from tfnn.serving.rest import dumps

LINGER_SECONDS = 2.0
# waitress refuses a header block or a body of its limit or more, so Server hands it tfnn's
# limits plus one; an error names tfnn's flag and limit: {status: (flag, waitress's setting)}.
LIMITS = {
    431: ("max_header_bytes", "max_request_header_size"),
    413: ("max_request_bytes", "max_request_body_size"),
}


class _JSONErrorTask(ErrorTask):
    """waitress's answer to a request it could not read, as `{"error": ...}`."""

    def execute(self):
        error = self.request.error
        detail = error.body
        if error.code in LIMITS:
            flag, setting = LIMITS[error.code]
            detail = f"more than {flag}={getattr(self.channel.server.adj, setting) - 1} bytes"
        body = dumps({"error": f"{error.reason}: {detail}"})
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()  # adds Connection: close
        self.content_length = len(body)
        self.write(body)
        self.channel.linger = True


class _JSONErrorChannel(HTTPChannel):
    """waitress's connection, answering protocol errors in JSON and closing after them
    gracefully: closing a socket with unread input makes the kernel send a reset, which can
    destroy the response before the client reads it. So after an error response the channel
    shuts its sending side and reads and drops what the client still sends, until the client
    closes or LINGER_SECONDS pass (the idle timeout closes a silent client)."""

    error_task_class = _JSONErrorTask
    linger = False
    _until = None

    def handle_close(self):
        if not self.linger or self._until is not None or not self.connected:
            return super().handle_close()
        self._until = time.monotonic() + LINGER_SECONDS
        # waitress set will_close to get here; set again (by the idle timeout or drain), it
        # ends the linger on the loop's next turn (writable)
        self.will_close = False
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            return super().handle_close()

    def writable(self):
        if self._until is not None:
            return self.will_close
        if self.requests and self.total_outbufs_len <= self.adj.outbuf_high_watermark:
            # A worker thread runs a request on this connection and sends what it writes
            # itself; the loop takes over what is left when it ends (or when the output passes
            # the high watermark, where the worker waits for the loop). Polling for writing
            # meanwhile makes the loop spin against that worker for the GIL and its output lock
            # (under load ~30 empty turns per request, and half the throughput).
            return self.will_close or self.close_when_flushed
        return super().writable()

    def handle_read(self):
        # While lingering, waitress's readable() holds: nothing is queued or left to send.
        if self._until is None:
            return super().handle_read()
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except OSError:
            data = b""
        if not data or time.monotonic() > self._until:
            super().handle_close()


def _allow_sockets(count):
    """Raises the open-file limit, if needed and allowed, to hold `count` connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256  # model files, pipes, the listening socket
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


class Server:
    """`app` served over HTTP (the arguments are tfnn-serve's flags).

    Args:
        app: the WSGI application.
        rest_api_host, rest_api_port: the address to bind (port 0: any free port).
        rest_api_num_threads: worker threads, the most requests the application runs at once.
        max_connections: the most open connections; more wait to be accepted.
        idle_timeout_seconds: a connection without activity for this long is closed.
        max_header_bytes: the most bytes of the request line and headers together, with the
            blank line ending them (more: 431).
        max_request_bytes: the most bytes of the body, with Content-Length or chunked (chunked:
            as sent, chunk sizes included) (more: 413).
    """

    def __init__(
        self,
        app,
        rest_api_host="127.0.0.1",
        rest_api_port=8501,
        rest_api_num_threads=16,
        max_connections=4096,
        idle_timeout_seconds=30.0,
        max_header_bytes=16 * 2**10,
        max_request_bytes=16 * 2**20,
    ):
        _allow_sockets(max_connections)
        self._map = {}
        self._server = waitress.create_server(
            app,
            map=self._map,
            host=rest_api_host,
            port=rest_api_port,
            threads=rest_api_num_threads,
            connection_limit=max_connections,
            channel_timeout=idle_timeout_seconds,
            # how often idle connections are looked for, in whole seconds (waitress truncates)
            cleanup_interval=max(1, min(30, int(idle_timeout_seconds / 2))),
            max_request_header_size=max_header_bytes + 1,  # LIMITS
            max_request_body_size=max_request_bytes + 1,
            ident="tfnn-serve",
        )
        self._server.channel_class = _JSONErrorChannel
        self.host = rest_api_host
        self.port = int(self._server.effective_port)

    def serve_until(self, stopping, poll_seconds=0.2):
        """Answers requests until the event `stopping` is set (checked every `poll_seconds`)."""
        while not stopping.is_set():  # poll(): select() cannot watch more than 1,024 sockets
            wasyncore.loop(timeout=poll_seconds, map=self._map, use_poll=True, count=1)

    def _channels(self):
        return [c for c in list(self._map.values()) if isinstance(c, HTTPChannel)]

    def drain(self, grace_seconds):
        """Stops accepting, finishes received requests (at most `grace_seconds`), closes.
        Returns the number of connections still busy when the grace time ran out."""
        wasyncore.dispatcher.close(self._server)  # the listening socket only
        deadline = time.monotonic() + grace_seconds
        while (channels := self._channels()) and time.monotonic() < deadline:
            for channel in channels:
                if not (channel.requests or channel.request or channel.total_outbufs_len):
                    channel.will_close = True  # idle: closed on the next loop turn
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)
        busy = len(self._channels())
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(self._map)
        return busy
