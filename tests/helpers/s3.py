"""A real S3 server for the tests: moto's standalone server on a free loopback port, and a tiny
fault-injecting HTTP proxy that can stand in front of it.

:class:`MotoServer` runs ``moto.server`` in a child process (killable mid-transfer, restartable
on the same port, stopped by a watchdog thread if the test process dies). The S3 clients of the
store find it through the standard AWS environment only (:meth:`MotoServer.env`), exactly as a
user's endpoint would be found. :class:`FaultProxy` forwards requests to it and, on demand,
answers the next N requests with HTTP 500 or 503 SlowDown, or cuts a response short.
"""

from __future__ import annotations

import http.client
import http.server
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

from tests.helpers.postgres import free_port

# moto's server, ended when the process that started it is gone (reparented).
_LAUNCH = """
import os, sys, threading, time
parent = int(sys.argv[1])
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[2]])
"""

FAKE_KEY_ID = "AKIACKPTSTORETEST"
FAKE_SECRET = "ckptstore-test-secret-do-not-print"


class MotoServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, str(os.getpid()), str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).read()
                return
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None:
                    raise RuntimeError("moto server exited at start") from None
                time.sleep(0.1)
        raise RuntimeError("moto server did not start within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """The standard AWS variables that point a client at this server (fake credentials)."""
        return {
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            # Fail fast in tests (the default is several attempts with backoff).
            "AWS_MAX_ATTEMPTS": "3",
        }

    def client(self):  # noqa: ANN201 - a boto3 client
        import boto3

        e = self.env()
        return boto3.client(
            "s3", endpoint_url=e["AWS_ENDPOINT_URL"], aws_access_key_id=e["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"], region_name=e["AWS_DEFAULT_REGION"],
        )

    def new_bucket(self) -> str:
        name = f"ckpt-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


class AuthMotoServer(MotoServer):
    """A moto server that checks signatures, as a real endpoint does (the shared one accepts any
    key). moto lets every request through until told to enforce (``/moto-api/reset-auth``): we
    first create an IAM user allowed ``s3:*``, its access key and a bucket, then enforce. After
    that, a wrong secret is refused with ``SignatureDoesNotMatch`` and an unknown key id with
    ``InvalidAccessKeyId`` (HEAD requests, which have no body, just with 403)."""

    def start(self) -> None:
        import json

        import boto3

        super().start()
        iam = boto3.client(
            "iam", endpoint_url=self.endpoint, aws_access_key_id="setup", aws_secret_access_key="setup",
            region_name="us-east-1",
        )
        iam.create_user(UserName="trainer")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="trainer", PolicyName="s3-all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="trainer")["AccessKey"]
        self.key_id, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        self.bucket = f"ckpt-auth-{uuid.uuid4().hex[:8]}"
        self.client().create_bucket(Bucket=self.bucket)
        req = urllib.request.Request(
            self.endpoint + "/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(req, timeout=10).read()

    def env(self, endpoint: str | None = None, *, key_id: str | None = None, secret: str | None = None) -> dict[str, str]:
        """The AWS variables for this server: the real key, or the ``key_id`` / ``secret`` given."""
        e = super().env(endpoint)
        if hasattr(self, "key_id"):
            e["AWS_ACCESS_KEY_ID"] = key_id or self.key_id
            e["AWS_SECRET_ACCESS_KEY"] = secret or self.secret
        return e


class FaultProxy:
    """A loopback HTTP proxy in front of ``target``; :meth:`inject` makes it misbehave for the
    next ``count`` requests whose method is ``method`` (any if None)."""

    def __init__(self, target: str) -> None:
        self.target = target.split("://", 1)[1]
        self.port = free_port()
        self.faults: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.seen = 0
        #: Requests still answered before the "server" goes away (None: it stays up).
        self.down_after: int | None = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = _read_chunked(self.rfile)
                fault = proxy._take(self.command)
                if fault == "drop":  # the server is gone: no answer, the connection closes
                    self.close_connection = True
                    return
                if fault == "500":
                    return self._reply(500, b"<Error><Code>InternalError</Code><Message>injected</Message></Error>")
                if fault == "slowdown":
                    return self._reply(503, b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>")
                conn = http.client.HTTPConnection(proxy.target, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                if body is not None:
                    headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                head = self.command == "HEAD"  # keeps the object's Content-Length
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection") and (head or k.lower() != "content-length"):
                        self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if fault == "truncate" and len(data) > 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":  # a HEAD answer has no body, or the connection breaks
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, kind: str, count: int = 1, method: str | None = None) -> None:
        with self.lock:
            self.faults += [(kind, method)] * count

    def go_down_after(self, n: int) -> None:
        """Answer ``n`` more requests, then drop every connection (a server that stopped)."""
        with self.lock:
            self.down_after = n

    def come_back(self) -> None:
        with self.lock:
            self.down_after = None

    def _take(self, method: str) -> str | None:
        with self.lock:
            self.seen += 1
            if self.down_after is not None:
                if self.down_after <= 0:
                    return "drop"
                self.down_after -= 1
            for i, (kind, m) in enumerate(self.faults):
                if m is None or m == method:
                    del self.faults[i]
                    return kind
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _read_chunked(f) -> bytes:  # noqa: ANN001
    out = bytearray()
    while True:
        line = f.readline().strip()
        n = int(line.split(b";")[0], 16)
        if n == 0:
            f.readline()
            return bytes(out)
        out += f.read(n)
        f.readline()
