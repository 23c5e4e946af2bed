"""The run search language on hostile, mistyped or huge input: one line, the same meaning on both databases, linear time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.hardening import ckpt, one_line_error, shown

# =========================================================================== 8-10 and notes: search


@pytest.fixture
def searched(store):  # noqa: ANN001, ANN201
    with store.start_run("123", params={"ß": 1, 'a"b': 2, "seed": 18446744073709551615, "lr": 0.01}) as run:
        run.log(100, loss=0.5)
    with store.start_run("other", params={"lr": 0.1}) as run:
        run.log(5, loss=0.9)
    return store


def _names(store, where: str, **kw) -> list[str]:  # noqa: ANN001
    return sorted(r.name for r in store.runs(where=where, **kw))


@pytest.mark.parametrize("where, expected", [
    ("name = 123", ["123"]),
    ("status = 1", []),
    ("last_step = '100'", ["123"]),
    ("last_step >= '6'", ["123"]),
    ("checkpoints = '0'", ["123", "other"]),
])
def test_a_value_of_the_other_type_means_the_same_on_both_databases(searched, where: str, expected: list) -> None:  # noqa: ANN001
    assert _names(searched, where) == expected


@pytest.mark.parametrize("where", ["created > 5", "ended = true", "last_step = 'abc'", "checkpoints < true"])
def test_a_value_that_cannot_compare_is_one_line(searched, where: str) -> None:  # noqa: ANN001
    from ckptstore.errors import QuerySyntaxError

    with pytest.raises(QuerySyntaxError):
        searched.runs(where=where)


@pytest.mark.parametrize("where", ['params."ß" = 1', "params.'a\"b' = 2", "params.seed = 18446744073709551615", "params.seed > 10000000000000000000"])
def test_params_with_any_name_or_a_huge_integer_match(searched, where: str) -> None:  # noqa: ANN001
    assert _names(searched, where) == ["123"]


def test_sorting_by_tag_is_one_line(searched) -> None:  # noqa: ANN001
    from ckptstore.errors import QuerySyntaxError

    with pytest.raises(QuerySyntaxError, match="tag"):
        searched.runs(order_by="tag")
    assert [r.name for r in searched.runs(order_by="params.seed")][0] == "123"


@pytest.mark.parametrize("where", [
    "(" * 400 + "name = 'x'" + ")" * 400,
    "not " * 400 + "name = 'x'",
    " or ".join(f"name = 'r{i}'" for i in range(1000)),
    "name = '" + "x" * 100_000 + "'",
    "name = 'a\x00b'",
    "name = 'a\ud800b'",
    "params.'a\x00' = 1",
])
def test_hostile_where_expressions_are_one_line(searched, where: str) -> None:  # noqa: ANN001
    from ckptstore.errors import QuerySyntaxError

    with pytest.raises(QuerySyntaxError) as info:
        searched.runs(where=where)
    assert "\n" not in str(info.value) and len(str(info.value)) < 1000


def test_many_ors_within_the_limit_still_work(searched) -> None:  # noqa: ANN001
    where = " or ".join(f"name = 'r{i}'" for i in range(190)) + " or name = 'other'"
    assert _names(searched, where) == ["other"]
    assert _names(searched, "(" * 40 + "name = 'other'" + ")" * 40) == ["other"]


def test_tokenizing_is_linear() -> None:
    import time

    from ckptstore.metadata.run_search import MAX_TEXT, QuerySyntaxError, tokenize

    text = "a " * (MAX_TEXT // 2)
    started = time.perf_counter()
    tokenize(text)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(QuerySyntaxError, match="too long"):
        tokenize(text + "xx")


def test_search_errors_are_one_line_on_the_command_line(sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    with sqlite_store.start_run("123", params={"ß": 1}) as run:
        run.log(1, loss=1.0)
    store = tmp_path / "store"
    r = ckpt("runs", "list", "--where", 'params."ß" = 1', "--json", store=store)
    assert r.returncode == 0 and '"123"' in r.stdout, shown(r)
    one_line_error(ckpt("runs", "list", "--sort", "tag", store=store), "tag", codes=(1, 2))
    r = ckpt("runs", "list", "--where", "params.seed = 18446744073709551615", store=store)
    assert r.returncode == 0 and "Traceback" not in r.stderr, shown(r)
    one_line_error(ckpt("runs", "list", "--where", "(" * 400 + "name = 'x'" + ")" * 400, store=store), "nested", codes=(1, 2))
    one_line_error(ckpt("runs", "list", "--where", " or ".join(f"name = 'r{i}'" for i in range(1000)), store=store), "comparisons", codes=(1, 2))
