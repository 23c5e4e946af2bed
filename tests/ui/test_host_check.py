"""The UI's Host header check on every loopback address (DNS rebinding)."""

from __future__ import annotations

from pathlib import Path

import pytest

# =========================================================================== 7. the UI's Host check


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_every_loopback_bind_checks_the_host_header(host: str) -> None:
    pytest.importorskip("starlette")
    from ckptstore.ui.server import allowed_hosts, bind

    if host == "::1" and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    sock = bind(host, 0)
    try:
        allowed = allowed_hosts(sock, host)
        assert allowed is not None, host
        assert "evil.example" not in allowed
        bound = sock.getsockname()[0]
        assert (f"[{bound}]" if ":" in bound else bound) in allowed
    finally:
        sock.close()
    any_sock = bind("0.0.0.0", 0)
    try:
        assert allowed_hosts(any_sock, "0.0.0.0") is None
    finally:
        any_sock.close()


@pytest.mark.slow
@pytest.mark.parametrize("host", ["::1", "127.0.0.2", "localhost"])
def test_the_ui_on_any_loopback_refuses_a_rebinding_page(host: str, children, sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    import http.client
    import urllib.parse

    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    if host == "::1" and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    from tests.cli.test_ui_command import start_ui, stop

    proc, url = start_ui(children, "--store", str(tmp_path / "store"), "ui", "--host", host, "--port", "0")
    try:
        u = urllib.parse.urlsplit(url)

        def status(host_header: str) -> int:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            c.putrequest("GET", "/api/runs", skip_host=True)
            c.putheader("Host", host_header)
            c.endheaders()
            r = c.getresponse()
            r.read()
            c.close()
            return r.status

        assert status(u.netloc) == 200  # the URL it printed answers
        assert status(f"localhost:{u.port}") == 200
        assert status(f"evil.example:{u.port}") == 400
    finally:
        err = stop(proc)
    assert "warning" not in err
