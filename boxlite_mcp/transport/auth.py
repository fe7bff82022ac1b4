"""Static bearer tokens for the HTTP transports: each token names its owner.

Tokens come from ``BOXLITE_MCP_AUTH_TOKENS`` (``token:subject,token:subject``)
and/or a file (``settings.auth_tokens_file``; one ``token subject`` per line,
``#`` comments and blank lines ignored). A request's token resolves to an
``AccessToken`` whose ``subject`` (and ``client_id``) is the subject: the owner of
the boxes that request creates.

Tokens are compared in constant time and never appear in logs, errors or reprs:
error messages name the source and line, not the token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mcp.server.auth.provider import AccessToken

logger = logging.getLogger(__name__)

#: Environment variable holding inline tokens.
TOKENS_ENV = "BOXLITE_MCP_AUTH_TOKENS"

#: Shorter tokens are refused: guessable tokens are no authentication.
MIN_TOKEN_LENGTH = 16

_HOW_TO_MAKE_ONE = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class AuthConfigError(ValueError):
    """The token configuration is malformed; the message says where, never the token."""


@dataclass(frozen=True)
class _Entry:
    digest: bytes = field(repr=False)  # sha256 of the token: equal lengths for compare_digest
    subject: str


class StaticTokenVerifier:
    """A ``TokenVerifier`` over a fixed table of tokens.

    The SHA-256 of a presented token is compared against every entry's with
    ``hmac.compare_digest`` (fixed length, no early exit), so timing reveals
    neither which entry matched nor how much of one, nor a token's length.
    """

    def __init__(self, entries: Mapping[str, str]) -> None:
        if not entries:
            raise AuthConfigError("bearer auth needs at least one token")
        self._entries = tuple(_Entry(_digest(t), s) for t, s in entries.items())

    @property
    def subjects(self) -> frozenset[str]:
        return frozenset(e.subject for e in self._entries)

    def __repr__(self) -> str:
        return f"StaticTokenVerifier({len(self._entries)} tokens)"

    async def verify_token(self, token: str) -> AccessToken | None:
        presented = _digest(token)
        subject: str | None = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry.digest) and subject is None:
                subject = entry.subject
        if subject is None:
            return None
        return AccessToken(token=token, client_id=subject, subject=subject, scopes=[])


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def parse_env_tokens(raw: str) -> dict[str, str]:
    """``token:subject,token:subject`` → {token: subject}."""
    tokens: dict[str, str] = {}
    for index, item in enumerate(raw.split(","), start=1):
        item = item.strip()
        if not item:
            continue
        token, sep, subject = item.partition(":")
        where = f"{TOKENS_ENV} entry {index}"
        if not sep:
            raise AuthConfigError(f"{where} has no ':'; write entries as token:subject")
        _add(tokens, token.strip(), subject.strip(), where)
    return tokens


def parse_token_file(path: Path) -> dict[str, str]:
    """Lines ``token subject`` → {token: subject}."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AuthConfigError(f"cannot read auth tokens file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise AuthConfigError(f"auth tokens file {path} is not UTF-8 text") from None
    _warn_if_shared(path)
    tokens: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        where = f"{path} line {number}"
        if len(parts) != 2:
            raise AuthConfigError(f"{where} needs two fields: a token, then its subject")
        _add(tokens, parts[0], parts[1].strip(), where)
    if not tokens:
        raise AuthConfigError(f"auth tokens file {path} holds no tokens; lines are 'token subject'")
    return tokens


def load_verifier(
    tokens_file: Path | None, environ: Mapping[str, str] | None = None
) -> StaticTokenVerifier | None:
    """The verifier for the configured tokens, or None when bearer auth is off."""
    env = os.environ if environ is None else environ
    tokens: dict[str, str] = {}
    raw = env.get(TOKENS_ENV)
    if raw is not None and raw.strip():
        tokens.update(parse_env_tokens(raw))
    if tokens_file is not None:
        for token, subject in parse_token_file(tokens_file).items():
            _add(tokens, token, subject, f"{tokens_file}")
    if not tokens:
        return None
    verifier = StaticTokenVerifier(tokens)
    logger.info("bearer auth on: %d tokens for %d subjects", len(tokens), len(verifier.subjects))
    return verifier


def _add(tokens: dict[str, str], token: str, subject: str, where: str) -> None:
    if not token:
        raise AuthConfigError(f"{where} has an empty token")
    if not subject:
        raise AuthConfigError(f"{where} has no subject; every token names the owner it stands for")
    if len(token) < MIN_TOKEN_LENGTH:
        raise AuthConfigError(
            f"{where}: token is shorter than {MIN_TOKEN_LENGTH} characters; {_HOW_TO_MAKE_ONE}"
        )
    if any(c.isspace() for c in token) or not token.isprintable():
        raise AuthConfigError(f"{where}: token contains whitespace or control characters")
    previous = tokens.get(token)
    if previous is not None and previous != subject:
        raise AuthConfigError(f"{where}: the same token is given for two subjects")
    tokens[token] = subject


def _warn_if_shared(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("auth tokens file %s is accessible to other users; chmod 600 it", path)
