"""Control characters in names are refused or shown escaped in every table."""

from __future__ import annotations

import json

import pytest

from tests.helpers.hardening import (
    ckpt,
    ckpt_many,
    ok,
    shown,
)
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402

# =========================================================================== 11. control characters


CONTROL = ["\n", "\r", "\x1b[31m"]


def _try(call):
    try:
        call()
        return True
    except (ckptstore.InvalidNameError, ckptstore.CkptstoreError, ValueError):
        return False


@pytest.mark.slow
def test_control_characters_are_refused_or_escaped_in_every_table(populated, tmp_path):
    accepted = {}
    with ckptstore.open_store(str(populated), create=False) as s:
        for i, ch in enumerate(CONTROL):
            run_name = f"ctl{i}"
            s.start_run(run_name).finish()
            # _try calls each lambda at once, inside this iteration: no late binding.
            accepted[f"tag key {ch!r}"] = _try(lambda: s.start_run(run_name, tags={f"k{ch}forged": "v"}).finish())  # noqa: B023 (run at once)
            accepted[f"tag value {ch!r}"] = _try(lambda: s.start_run(run_name, tags={"note": f"a{ch}forged row"}).finish())  # noqa: B023 (run at once)
            accepted[f"param {ch!r}"] = _try(lambda: s.start_run(run_name, params={f"p{ch}": f"x{ch}y"}).finish())  # noqa: B023 (run at once)
            accepted[f"alias message {ch!r}"] = _try(lambda: s.set_alias(f"v{i}", "r@1", message=f"m{ch}forged row"))  # noqa: B023 (run at once)
            accepted[f"run name {ch!r}"] = _try(lambda: s.start_run(f"bad{ch}name").finish())  # noqa: B023 (run at once)
            accepted[f"alias name {ch!r}"] = _try(lambda: s.set_alias(f"al{ch}x", "r@1"))  # noqa: B023 (run at once)
            assert not accepted[f"run name {ch!r}"] and not accepted[f"alias name {ch!r}"]
        runs = s.runs()
        aliases = s.aliases()
        history = s.aliases("v0")[0].history if any(a.name == "v0" for a in aliases) else []
    calls = [
        (("runs", "list"), 1 + len(runs)),
        (("runs", "list", "--"), 1 + len(runs)),
        (("runs", "show", "ctl0"), 10),
        (("runs", "show", "ctl1"), 10),
        (("runs", "show", "ctl2"), 10),
        (("aliases",), 1 + len(aliases)),
    ]
    if history:
        calls.append((("aliases", "v0"), 2 + 1 + 2 + len(history)))
    results = ckpt_many([(args, {"store": populated}) for args, _ in calls])
    problems = []
    for (args, lines), r in zip(calls, results):
        assert r.returncode == 0, (args, shown(r))
        if "\x1b" in r.stdout or "\r" in r.stdout:
            problems.append(f"{' '.join(args)}: a raw ESC or CR byte in the output")
        if len(r.stdout.splitlines()) != lines:
            problems.append(f"{' '.join(args)}: {len(r.stdout.splitlines())} lines, expected {lines}: {r.stdout!r}")
    # JSON keeps what was stored, exactly.
    got = {x["name"]: x["tags"] for x in json.loads(ok(ckpt("runs", "list", "--json", store=populated)))}
    for i, ch in enumerate(CONTROL):
        if accepted[f"tag value {ch!r}"]:
            assert got[f"ctl{i}"].get("note") == f"a{ch}forged row"
    assert not problems, f"accepted at input: {[k for k, v in accepted.items() if v]}\n" + "\n".join(problems)
