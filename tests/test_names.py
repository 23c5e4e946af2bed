"""Run and alias names, and the reference grammar (run@step, run@latest, run@~N, export:ID, alias)."""

from __future__ import annotations

import pytest

from ckptstore.errors import CkptstoreError, InvalidNameError, InvalidRefError
from ckptstore.names import NAME_MAX, Ref, check_alias_name, check_run_name, parse_ref


@pytest.mark.parametrize(
    "name",
    ["mnist", "resnet-50_v2", "a", "run.1", "x" * NAME_MAX, "ünïcode-ラン", "has space", "a:b", "latest"],
)
def test_valid_run_names_are_accepted_unchanged(name):
    assert check_run_name(name) == name


@pytest.mark.parametrize(
    "name,why",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * (NAME_MAX + 1), "limit"),
        (".", "not allowed"),
        ("..", "not allowed"),
        ("-rf", "'-'"),
        (" lead", "white space"),
        ("trail ", "white space"),
        ("a@b", "'@'"),
        ("a/b", "'/'"),
        ("a\\b", "'\\\\\\\\'"),
        ("nul\x00", "control character"),
        ("tab\tname", "control character"),
        ("zero\u200bwidth", "control character"),
        ("line\u2028sep", "control character"),
    ],
)
def test_bad_run_names_are_refused_with_the_reason(name, why):
    with pytest.raises(InvalidNameError, match=why) as err:
        check_run_name(name)
    assert "\n" not in str(err.value)
    assert len(str(err.value)) < 200  # a long bad name is shortened in the message


@pytest.mark.parametrize("name", [None, 3, b"bytes"])
def test_a_name_that_is_not_a_string_is_refused(name):
    with pytest.raises(InvalidNameError, match="must be a string"):
        check_run_name(name)


def test_alias_names_also_exclude_colon_and_reserved_words():
    assert check_alias_name("prod") == "prod"
    assert check_alias_name("v1.2-rc") == "v1.2-rc"
    with pytest.raises(InvalidNameError, match="':'"):
        check_alias_name("export:3")
    with pytest.raises(InvalidNameError, match="reserved"):
        check_alias_name("latest")
    with pytest.raises(InvalidNameError, match="'@'"):
        check_alias_name("a@1")


def test_name_errors_are_value_errors_and_ckptstore_errors():
    assert issubclass(InvalidNameError, CkptstoreError) and issubclass(InvalidNameError, ValueError)
    assert issubclass(InvalidRefError, CkptstoreError) and issubclass(InvalidRefError, ValueError)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("mnist@1000", Ref("step", "mnist@1000", run="mnist", step=1000)),
        ("mnist@0", Ref("step", "mnist@0", run="mnist", step=0)),
        ("mnist@latest", Ref("latest", "mnist@latest", run="mnist")),
        ("mnist@~50000", Ref("nearest", "mnist@~50000", run="mnist", step=50000)),
        ("export:7", Ref("export", "export:7", export_id=7)),
        ("prod", Ref("alias", "prod", alias="prod")),
        ("run:with:colons@5", Ref("step", "run:with:colons@5", run="run:with:colons", step=5)),
        ("latest-good", Ref("alias", "latest-good", alias="latest-good")),
    ],
)
def test_references_parse(text, expected):
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    "text,why",
    [
        ("@100", "no run name"),
        ("a@b@1", "more than one '@'"),
        ("mnist@", "expected a step"),
        ("mnist@-1", "expected a step"),
        ("mnist@1.5", "expected a step"),
        ("mnist@~", "expected a step"),
        ("mnist@~x", "expected a step"),
        ("mnist@newest", "expected a step"),
        ("export:", "export id is a number"),
        ("export:abc", "export id is a number"),
        ("", "not run@step"),
        ("latest", "not run@step"),
        ("-x@1", "bad reference"),
        ("a/b@1", "bad reference"),
    ],
)
def test_malformed_references_are_refused_with_the_reason(text, why):
    with pytest.raises(InvalidRefError, match=why) as err:
        parse_ref(text)
    assert "\n" not in str(err.value)


def test_a_reference_must_be_a_string():
    with pytest.raises(InvalidRefError, match="must be a string"):
        parse_ref(1000)


def test_a_very_long_bad_reference_is_shortened_in_the_message():
    with pytest.raises(InvalidRefError) as err:
        parse_ref("r@" + "x" * 5000)
    assert len(str(err.value)) < 300


def test_numbers_past_the_bigint_range_are_refused_or_clamped():
    with pytest.raises(InvalidRefError, match="larger than the largest step"):
        parse_ref("r@9223372036854775808")
    with pytest.raises(InvalidRefError, match="no export id"):
        parse_ref("export:99999999999999999999")
    assert parse_ref("r@9223372036854775807").step == 2**63 - 1
    # "the newest checkpoint at or below N" for a huge N is simply the newest one
    assert parse_ref("r@~99999999999999999999").step == 2**63 - 1
