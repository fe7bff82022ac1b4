"""Secret specs, choice and substitution, as unit tests (values never in messages)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxlite_mcp.runtime.network.secrets import (
    Secret,
    SecretError,
    Substitution,
    choose,
    for_box,
    load,
    parse_specs,
    placeholder,
    split_env_specs,
)

VALUE = "value-that-must-not-leak"


def test_parse_specs() -> None:
    assert parse_specs(["GH_TOKEN:api.github.com,*.githubusercontent.com", "ANY", " "]) == {
        "GH_TOKEN": ("api.github.com", "*.githubusercontent.com"),
        "ANY": ("*",),
    }
    assert split_env_specs("A:x.com,y.com;B:*;") == ["A:x.com,y.com", "B:*"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("1BAD", "invalid"),
        ("A-B:x.com", "invalid"),
        ("A:bad host", "host"),
        ("A:a..*", "host"),
        ("A:x.com:443", "host"),
        ("", None),
    ],
)
def test_bad_specs(spec: str, says: str | None) -> None:
    if says is None:
        assert parse_specs([spec]) == {}
        return
    with pytest.raises(SecretError, match=says):
        parse_specs([spec])


def test_twice_is_an_error() -> None:
    with pytest.raises(SecretError, match="twice"):
        parse_specs(["A", "A:x.com"])


def test_load_needs_every_value_and_never_shows_one() -> None:
    with pytest.raises(SecretError, match="B") as caught:
        load({"A": ("*",), "B": ("*",)}, {"A": VALUE})
    assert VALUE not in str(caught.value)
    secret = load({"A": ("x.com",)}, {"A": VALUE})["A"]
    assert VALUE not in repr(secret)


def test_choose_names_what_exists() -> None:
    available = {"A": Secret("A", ("*",), VALUE)}
    with pytest.raises(SecretError, match=r"'B' is not configured.*available: A"):
        choose(available, ["A", "B"])
    with pytest.raises(SecretError, match="none"):
        choose({}, ["A"])
    assert choose(available, ["A"]) == available


@pytest.mark.parametrize(
    ("hosts", "host", "expected"),
    [
        (("x.com",), "x.com", True),
        (("x.com",), "X.COM.", True),
        (("x.com",), "a.x.com", False),
        (("*.x.com",), "a.x.com", True),
        (("*.x.com",), "x.com", False),
        (("*.x.com",), "evilx.com", False),
        (("*",), "anything", True),
    ],
)
def test_for_host(hosts: tuple[str, ...], host: str, expected: bool) -> None:
    assert Secret("A", hosts, VALUE).for_host(host) is expected


def test_apply() -> None:
    sub = Substitution({"A": Secret("A", ("api.x.com",), VALUE)})
    data = f"GET /?k={placeholder('A')} HTTP/1.1\r\nAuth: {placeholder('A')}\r\n".encode()
    assert sub.apply(data, "api.x.com") == data.replace(placeholder("A").encode(), VALUE.encode())
    with pytest.raises(SecretError, match=r"secret A to evil\.com") as caught:
        sub.apply(data, "evil.com")
    assert VALUE not in str(caught.value)
    other = placeholder("OTHER").encode()
    assert sub.apply(other, "evil.com") == other  # not this box's: only text
    assert sub.apply(b"plain", "evil.com") == b"plain"
    assert sub.env() == {"A": "<BOXLITE_SECRET:A>"}
    assert sub.wanted_by("api.x.com") and not sub.wanted_by("x.com")
    assert not Substitution({})


@given(st.binary(max_size=200), st.text(max_size=30))
def test_apply_never_leaks_into_errors(data: bytes, host: str) -> None:
    sub = Substitution({"A": Secret("A", ("x.com",), VALUE)})
    try:
        sub.apply(data + placeholder("A").encode(), host)
    except SecretError as exc:
        assert VALUE not in str(exc)


def test_for_box() -> None:
    available = {"A": Secret("A", ("*",), VALUE)}
    assert for_box(available, None, False) == {} and for_box(available, [], False) == {}
    with pytest.raises(SecretError, match="network"):
        for_box(available, ["A"], False)
    assert for_box(available, ["A"], True) == available
    with pytest.raises(SecretError, match="not configured"):
        for_box(available, ["B"], True)
