"""A reverse proxy that adds our API key, for the MCP conformance suite (stdlib only).

The suite's client (`@modelcontextprotocol/conformance` 0.1.x) cannot send custom headers and Toolbridge
answers 401 without a key, so the suite talks to this proxy instead:

    AUTHPROXY_KEY=tb_... python tests/conformance/authproxy.py --upstream http://127.0.0.1:8000 \\
        --port-file /tmp/proxy.port

- adds `Authorization: Bearer $AUTHPROXY_KEY` (replacing any incoming one; the key is read from the
  environment so that it never shows in `ps`);
- forwards Host and Origin verbatim: the `dns-rebinding-protection` scenario sends Host/Origin
  `evil.example.com` and expects the real server to refuse them;
- streams answers (SSE) chunk by chunk, and closes the upstream connection when the client goes away (else an
  abandoned GET stream stays open and the session's next GET gets 409);
- listens on a free loopback port and writes it to --port-file.
"""

from __future__ import annotations

import argparse
import http.client
import os
import select
import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "trailers", "transfer-encoding", "upgrade",
              "content-length"}  # re-framed below


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream: urllib.parse.SplitResult
    authorization: str
    timeout = 600  # idle client socket

    def log_message(self, format: str, *args: object) -> None:  # quiet: the suite reports what matters
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return bytes(body)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _proxy(self) -> None:
        body = self._read_body()
        upstream = http.client.HTTPConnection(self.upstream.hostname or "127.0.0.1", self.upstream.port or 80,
                                              timeout=600)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            listed = {token.strip().lower() for token in self.headers.get("Connection", "").split(",")}
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP | listed | {"authorization"}:
                    upstream.putheader(name, value)  # Host and Origin included, unchanged
            upstream.putheader("Authorization", self.authorization)
            if body or self.command in ("POST", "PUT", "PATCH"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body or None)
            answer = upstream.getresponse()
        except OSError as exc:
            upstream.close()
            self.send_error(502, f"upstream error: {exc}")
            return
        done = threading.Event()
        try:
            self.send_response_only(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            if self.command == "HEAD" or answer.status in (204, 304) or answer.status < 200:
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            hangup = threading.Thread(target=self._close_upstream_on_hangup, args=(upstream, done),
                                      daemon=True)
            hangup.start()
            while chunk := answer.read1(65536):  # whatever has arrived: SSE events pass at once
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (OSError, ValueError, http.client.HTTPException):  # the client left, or the upstream did
            self.close_connection = True
        finally:
            done.set()
            upstream.close()

    def _close_upstream_on_hangup(self, upstream: http.client.HTTPConnection, done: threading.Event) -> None:
        while not done.is_set():
            try:
                readable, _, _ = select.select([self.connection], [], [], 0.5)
                if not readable:
                    continue
                if self.connection.recv(1, socket.MSG_PEEK) == b"" and upstream.sock is not None:
                    upstream.sock.shutdown(socket.SHUT_RDWR)  # the client hung up: so do we
                return  # else the client pipelined its next request: stop watching
            except (OSError, ValueError):
                return

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _proxy


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        exc_type = sys.exc_info()[0]
        if exc_type is not None and issubclass(exc_type, (ConnectionError, TimeoutError)):
            return  # the suite's client resets idle keep-alive sockets when it exits
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--port-file", required=True, help="where to write the port we listen on")
    args = parser.parse_args()
    key = os.environ.get("AUTHPROXY_KEY")
    if not key:
        parser.error("set AUTHPROXY_KEY to the API key to send")
    ProxyHandler.upstream = urllib.parse.urlsplit(args.upstream)
    ProxyHandler.authorization = f"Bearer {key}"
    server = QuietServer(("127.0.0.1", 0), ProxyHandler)
    port_file = args.port_file
    draft = f"{port_file}.draft"
    with open(draft, "w") as file:
        file.write(str(server.server_address[1]))
    os.replace(draft, port_file)  # whole or absent: the test polls for it
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
