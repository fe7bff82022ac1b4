"""Token parsing and verification on their own: the edges of ``boxlite_mcp.auth``.

``test_auth`` covers the everyday configuration and the HTTP 401s; these tests pin
down what a broken check would let through (issue 14): blank entries, the exact
16-character minimum, whitespace and control characters inside a token, the
entry and line numbers errors point at, and that no error or log shows a token.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from boxlite_mcp.transport.auth import (
    MIN_TOKEN_LENGTH,
    TOKENS_ENV,
    AuthConfigError,
    StaticTokenVerifier,
    _digest,
    _Entry,
    _warn_if_shared,
    load_verifier,
    parse_env_tokens,
    parse_token_file,
)

pytestmark = pytest.mark.anyio

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"


def refused(raw: str) -> str:
    """The message parse_env_tokens refuses ``raw`` with."""
    with pytest.raises(AuthConfigError) as caught:
        parse_env_tokens(raw)
    return str(caught.value)


def test_blank_entries_are_skipped_wherever_they_are() -> None:
    assert parse_env_tokens(f",{ALICE}:alice, ,\t,{BOB}:bob,,") == {ALICE: "alice", BOB: "bob"}
    assert parse_env_tokens(f" , {ALICE} : alice ") == {ALICE: "alice"}
    assert parse_env_tokens(" , ,") == {}


def test_errors_count_entries_from_one_including_blank_ones() -> None:
    message = refused(f"{ALICE}:alice,,{BOB}")
    assert message == f"{TOKENS_ENV} entry 3 has no ':'; write entries as token:subject"
    assert refused("nocolon").startswith(f"{TOKENS_ENV} entry 1 has no ':'")


def test_the_subject_is_everything_after_the_first_colon() -> None:
    assert parse_env_tokens(f"{ALICE}:team:alice:dev") == {ALICE: "team:alice:dev"}


@pytest.mark.parametrize("length", [MIN_TOKEN_LENGTH - 1, 1])
def test_tokens_shorter_than_16_characters_are_refused(length: int) -> None:
    token = "t" * length
    message = refused(f"{token}:alice")
    assert message == (
        f"{TOKENS_ENV} entry 1: token is shorter than 16 characters; make one with: "
        "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )  # the exact message: it never repeats the token


@pytest.mark.parametrize("length", [MIN_TOKEN_LENGTH, MIN_TOKEN_LENGTH + 1])
def test_tokens_of_16_characters_or_more_are_accepted(length: int) -> None:
    token = "t" * length
    assert parse_env_tokens(f"{token}:alice") == {token: "alice"}


def test_the_minimum_is_16() -> None:
    assert MIN_TOKEN_LENGTH == 16


@pytest.mark.parametrize(
    "token",
    [
        "0123456789 abcdef",  # a space alone: printable, but whitespace
        "0123456789\u00a0abcdef",  # a no-break space: printable to Python, still whitespace
        "0123456789\x01abcdef",  # a control character alone: not whitespace, not printable
        "0123456789\x7fabcdef",  # DEL
        "0123456789\u200babcdef",  # a zero-width space: invisible, not printable
        "0123456789\tabcdef",
    ],
)
def test_tokens_with_whitespace_or_control_characters_are_refused(token: str) -> None:
    message = refused(f"{token}:alice")
    assert message == f"{TOKENS_ENV} entry 1: token contains whitespace or control characters"


def test_empty_token_and_missing_subject_are_named() -> None:
    assert refused(" :alice") == f"{TOKENS_ENV} entry 1 has an empty token"
    assert refused(f"{ALICE}: ") == (
        f"{TOKENS_ENV} entry 1 has no subject; every token names the owner it stands for"
    )


def test_one_token_for_two_subjects_is_refused_but_a_repeat_is_not() -> None:
    assert parse_env_tokens(f"{ALICE}:alice,{ALICE}:alice") == {ALICE: "alice"}
    message = refused(f"{BOB}:bob,{ALICE}:alice,{ALICE}:mallory")
    assert message == f"{TOKENS_ENV} entry 3: the same token is given for two subjects"


def test_token_file_skips_comments_and_blank_lines_and_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# who may use this server\n\n   \n  {ALICE}   alice smith  \n#{BOB} bob\n")
    assert parse_token_file(path) == {ALICE: "alice smith"}
    path.write_text(f"# header\n\n{ALICE} alice\nshort bob\n")
    with pytest.raises(AuthConfigError) as caught:
        parse_token_file(path)
    assert str(caught.value).startswith(f"{path} line 4: token is shorter than 16 characters")


def test_token_file_refuses_control_characters(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("0123456789\x01abcdef alice\n")
    with pytest.raises(AuthConfigError) as caught:
        parse_token_file(path)
    assert str(caught.value) == f"{path} line 1: token contains whitespace or control characters"


def test_unreadable_token_files_are_named_not_tracebacks(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(AuthConfigError) as caught:
        parse_token_file(missing)
    assert str(caught.value) == f"cannot read auth tokens file {missing}: No such file or directory"
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" + ALICE.encode() + b" alice\n")
    with pytest.raises(AuthConfigError) as caught:
        parse_token_file(binary)
    assert str(caught.value) == f"auth tokens file {binary} is not UTF-8 text"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_token_file_without_tokens_says_how_to_write_one(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# nobody yet\n\n")
    with pytest.raises(AuthConfigError) as caught:
        parse_token_file(path)
    assert (
        str(caught.value) == f"auth tokens file {path} holds no tokens; lines are 'token subject'"
    )


@pytest.mark.parametrize(("mode", "warned"), [(0o600, False), (0o640, True), (0o604, True)])
def test_token_file_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, warned: bool
) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{ALICE} alice\n")
    path.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="boxlite_mcp.transport.auth"):
        parse_token_file(path)
    assert ("accessible to other users; chmod 600 it" in caplog.text) is warned


def test_load_verifier_combines_checks_and_logs_counts_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{BOB} alice\n{ALICE} alice\n")
    path.chmod(0o600)
    with caplog.at_level(logging.INFO, logger="boxlite_mcp.transport.auth"):
        verifier = load_verifier(path, {TOKENS_ENV: f"{ALICE}:alice"})
    assert verifier is not None and verifier.subjects == {"alice"}
    assert "bearer auth on: 2 tokens for 1 subjects" in caplog.text
    assert ALICE not in caplog.text and BOB not in caplog.text
    # The file may not give an env token to somebody else.
    path.write_text(f"{ALICE} mallory\n")
    with pytest.raises(AuthConfigError) as caught:
        load_verifier(path, {TOKENS_ENV: f"{ALICE}:alice"})
    assert str(caught.value) == f"{path}: the same token is given for two subjects"


def test_load_verifier_without_env_variable_uses_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{BOB} bob\n")
    verifier = load_verifier(path, {"UNRELATED": "x"})
    assert verifier is not None and verifier.subjects == {"bob"}
    assert load_verifier(None, {TOKENS_ENV: ""}) is None
    assert load_verifier(None, {TOKENS_ENV: " , "}) is None


def test_load_verifier_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKENS_ENV, f"{ALICE}:alice")
    verifier = load_verifier(None)
    assert verifier is not None and verifier.subjects == {"alice"}
    monkeypatch.delenv(TOKENS_ENV)
    assert load_verifier(None) is None


def test_a_verifier_needs_a_token() -> None:
    with pytest.raises(AuthConfigError, match=r"^bearer auth needs at least one token$"):
        StaticTokenVerifier({})


async def test_verified_tokens_carry_their_subject_and_no_scopes() -> None:
    verifier = StaticTokenVerifier({ALICE: "alice", BOB: "bob"})
    assert repr(verifier) == "StaticTokenVerifier(2 tokens)"
    assert verifier.subjects == {"alice", "bob"}
    for token, subject in ((ALICE, "alice"), (BOB, "bob")):
        access = await verifier.verify_token(token)
        assert access is not None
        assert (access.token, access.client_id, access.subject) == (token, subject, subject)
        assert access.scopes == []


async def test_tokens_that_are_not_valid_unicode_are_refused_not_crashed_on() -> None:
    # A lone surrogate is what a header with undecodable bytes turns into.
    verifier = StaticTokenVerifier({ALICE: "alice"})
    assert await verifier.verify_token("\udcff" + ALICE[1:]) is None
    assert await verifier.verify_token(ALICE.upper()) is None


def test_a_table_entry_is_fixed_and_never_shows_its_digest() -> None:
    """Once loaded, no code can move a token to another subject; a repr (a log line,
    a traceback with locals) shows the subject only, never material derived from a token."""
    entry = _Entry(_digest(ALICE), "alice")
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.subject = "mallory"  # type: ignore[misc]
    assert repr(entry) == "_Entry(subject='alice')"


def test_a_token_file_gone_before_its_mode_is_checked_is_not_an_error(tmp_path: Path) -> None:
    # The file is read first; if it vanishes before the mode check, there is nothing to warn about.
    _warn_if_shared(tmp_path / "vanished")
