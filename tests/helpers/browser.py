"""Chromium for the web-view tests: Debian's binary driven by Playwright for Python.

Playwright's own browser download needs the internet, so the system binary is used
(``executable_path``); ``.ci/run`` installs it. Without chromium or Playwright the browser
tests skip (fail in CI).

Screenshots: :func:`shoot` photographs a page into the test's tmp dir; with
``CKPTSTORE_SCREENSHOTS=1`` it also writes ``docs/images/NAME.png`` (the README's images come
from that run), with ``CKPTSTORE_SCREENSHOTS=DIR`` into DIR.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.skips import in_ci

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is missing (pip install playwright; its browser download is not needed)"
    pytest.importorskip("uvicorn", reason="ckptstore ui needs uvicorn (the 'ui' extra)")
    return None


def launch() -> Iterator[Any]:
    """A headless chromium for a fixture to yield (skipped, or failed in CI, without one)."""
    reason = missing()
    if reason:
        if in_ci():
            pytest.fail(f"{reason}: CI must run the browser tests", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def new_page(browser: Any, width: int = 1280, height: int = 900) -> Any:
    """A page in a fresh context whose ``problems`` lists script errors, dialogs and console
    errors (a test ends by asserting it is empty)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    p = context.new_page()
    p.set_default_timeout(20_000)
    problems: list[str] = []
    p.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    p.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    p.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    p.problems = problems
    return p


def shoot(page: Any, tmp_path: Path, name: str, *, full_page: bool = True, keep: bool = True) -> Path:
    """``page`` photographed as ``NAME.png`` (see the module docstring); ``keep=False``: only
    into ``tmp_path``."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    where = os.environ.get("CKPTSTORE_SCREENSHOTS") if keep else None
    if where:
        folder = IMAGES if where == "1" else Path(where)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)
    assert path.stat().st_size > 1000
    return path


def drag_across(page: Any, plot: Any, start: float, stop: float) -> None:
    """Drag the mouse across the middle of a chart's plot area ``plot`` (its ``.u-over``), from
    fraction ``start`` to ``stop`` of its width: a zoom on that window."""
    box = plot.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * stop, y, steps=5)
    page.mouse.up()
