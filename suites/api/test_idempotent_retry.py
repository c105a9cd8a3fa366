"""The client's resend of a create whose answer was lost creates nothing twice.

A small TCP proxy between client and a real server loses the answer to the first request
on purpose: it forwards the request, lets the server apply it, reads the whole answer and
then either drops the connection or holds it until the client gives up (a read timeout).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Literal

import pytest

from runner.client import Client
from runner.client.errors import TransportError

Loss = Literal["drop", "hold"]


def _read_answer(sock: socket.socket) -> bytes:
    """One HTTP answer with a Content-Length body (what the tolu server sends)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return data


class LossyProxy:
    """Forwards connections to ``upstream``; the answer on the first connection is lost."""

    def __init__(self, upstream: str, loss: Loss) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.loss = loss
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.lost = threading.Event()
        self._closing: list[socket.socket] = [self.listener]

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            first = self.connections == 1
            threading.Thread(target=self._handle, args=(client, first), daemon=True).start()

    def _handle(self, client: socket.socket, first: bool) -> None:
        server = socket.create_connection(self.upstream)
        self._closing += [client, server]
        if first:
            request = client.recv(1 << 20)
            while b"\r\n\r\n" not in request:
                request += client.recv(1 << 20)
            server.sendall(request)
            head, _, body = request.partition(b"\r\n\r\n")
            length = next(
                int(x.split(b":", 1)[1])
                for x in head.split(b"\r\n")
                if x.lower().startswith(b"content-length:")
            )
            while len(body) < length:
                more = client.recv(1 << 20)
                server.sendall(more)
                body += more
            _read_answer(server)  # the server applied it and answered: the answer goes nowhere
            self.lost.set()
            if self.loss == "drop":
                client.close()
            else:
                client.recv(1)  # hold until the client gives up and closes
            server.close()
            return
        threading.Thread(target=_pipe, args=(server, client), daemon=True).start()
        _pipe(client, server)

    def close(self) -> None:
        for s in self._closing:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept() or recv()
            with contextlib.suppress(OSError):
                s.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def lossy(url: str, loss: Loss) -> Iterator[LossyProxy]:
    proxy = LossyProxy(url, loss)
    threading.Thread(target=proxy.serve, daemon=True).start()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.mark.parametrize("loss", ["drop", "hold"])
def test_a_create_whose_answer_was_lost_is_sent_again_and_creates_nothing_twice(
    tolu_client: Client, loss: Loss
) -> None:
    site = tolu_client.sites.create(name=f"lossy-{loss}", path="/p", hostname="h")
    app = tolu_client.apps.create(
        site_id=site.id, name="echo", command_template="echo {x}", parameters={"x": "1"}
    )
    with lossy(tolu_client.url, loss) as proxy:
        # "hold": the client waits `timeout` for an answer that never comes, then sends again
        client = Client(proxy.url, tolu_client._http.token, timeout=5, retries=2, backoff=0.01)
        made = client.jobs.bulk_create([{"app_id": app.id, "parameters": {"x": str(i)}} for i in range(50)])
        client.close()
        assert proxy.lost.is_set() and proxy.connections == 2
    assert len(made) == 50 and len({j.id for j in made}) == 50
    assert tolu_client.jobs.count(app_id=app.id) == 50


def test_without_keys_a_timed_out_create_is_not_sent_again(tolu_client: Client) -> None:
    """The old rule stays for everything else: a POST that timed out may have been applied."""
    with lossy(tolu_client.url, "hold") as proxy:
        client = Client(proxy.url, tolu_client._http.token, timeout=2, retries=2, backoff=0.01)
        with pytest.raises(TransportError) as err:
            client.sites.create(name="once", path="/p", hostname="h")
        client.close()
        assert err.value.timed_out and proxy.connections == 1
    assert [s.name for s in tolu_client.sites.filter(name="once")] == ["once"]
