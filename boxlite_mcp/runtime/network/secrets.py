"""Secrets a box uses without ever holding them (BoxLite's ``SecretSpec``).

The operator names each secret and the hosts it is for (``--secret
NAME[:HOST,HOST...]``, env ``BOXLITE_MCP_SECRETS`` as ``NAME:HOST,HOST;NAME2:*``);
its value is the server's own environment variable ``NAME``, read once at start,
never a tool argument. A box created with ``secrets: [NAME]`` sees only the
placeholder ``<BOXLITE_SECRET:NAME>`` (in its environment variable ``NAME``);
the egress proxy swaps the value in for outbound HTTP requests to the secret's
hosts (request line, headers, and the body: one of known length, or a chunked
one piece by piece, ``StreamSubstitution``) and refuses a request
that carries a placeholder to any other host. The value is never logged, never
put in an error (errors name the secret, not its value), never written to disk.

Host patterns: ``example.com`` (that name), ``*.example.com`` (names below it),
``*`` (any host), ``host.boxlite.internal``; matched case-insensitively, without
the port.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: The longest placeholder: ``<BOXLITE_SECRET:`` + a 128-character name + ``>``.
PLACEHOLDER_MAX = len("<BOXLITE_SECRET:") + 128 + 1
PLACEHOLDER_RE = re.compile(rb"<BOXLITE_SECRET:([A-Za-z_][A-Za-z0-9_]{0,127})>")
_HOST_RE = re.compile(r"^(\*|(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?)$")


class SecretError(ValueError):
    """A secret spec, name or use that cannot be accepted; the message says why."""


def placeholder(name: str) -> str:
    return f"<BOXLITE_SECRET:{name}>"


def to_spec(secret: Secret) -> dict[str, object]:
    """BoxLite's ``SecretSpec`` for a server that substitutes it (the value included:
    only ever sent to the BoxLite server, which keeps it out of the guest)."""
    hosts = [] if "*" in secret.hosts else list(secret.hosts)
    return {
        "name": secret.name,
        "value": secret.value,
        "hosts": hosts,
        "placeholder": placeholder(secret.name),
    }


@dataclass(frozen=True)
class Secret:
    """One operator secret. ``repr`` never shows the value."""

    name: str
    hosts: tuple[str, ...]
    value: str = field(repr=False)

    def for_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for pattern in self.hosts:
            if pattern == "*" or pattern == host:
                return True
            if pattern.startswith("*.") and host.endswith(pattern[1:]):
                return True
        return False


def parse_specs(specs: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``NAME[:HOST,HOST...]`` items (no hosts: ``*``) to {name: hosts}."""
    out: dict[str, tuple[str, ...]] = {}
    for raw in specs:
        text = raw.strip()
        if not text:
            continue
        name, _, hosts_text = text.partition(":")
        name = name.strip()
        if not NAME_RE.match(name):
            raise SecretError(
                f"secret name {name!r} in {raw!r} is invalid: use letters, digits and '_', "
                "not starting with a digit (it is also the environment variable holding it)"
            )
        hosts = tuple(h.strip().lower() for h in hosts_text.split(",") if h.strip()) or ("*",)
        for host in hosts:
            if not _HOST_RE.match(host):
                raise SecretError(
                    f"secret {name}: host {host!r} is invalid; use a host name, *.domain or *"
                )
        if name in out:
            raise SecretError(f"secret {name} is named twice; give each secret once")
        out[name] = hosts
    return out


def split_env_specs(text: str) -> list[str]:
    """``BOXLITE_MCP_SECRETS``'s ``NAME:HOST,HOST;NAME2:*`` as spec items."""
    return [part for part in text.split(";") if part.strip()]


def load(specs: Mapping[str, tuple[str, ...]], environ: Mapping[str, str]) -> dict[str, Secret]:
    """The operator's secrets with their values from ``environ``; SecretError if one is unset."""
    missing = [name for name in specs if not environ.get(name)]
    if missing:
        raise SecretError(
            f"secret {', '.join(missing)} has no value: set the server's environment "
            f"variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} before starting it"
        )
    return {name: Secret(name, hosts, environ[name]) for name, hosts in specs.items()}


def choose(available: Mapping[str, Secret], names: Iterable[str]) -> dict[str, Secret]:
    """The secrets a box asked for, by name (the key they are held under; usually the
    secret's own name); SecretError naming unknown ones."""
    chosen: dict[str, Secret] = {}
    for name in names:
        if not isinstance(name, str) or name not in available:
            offer = ", ".join(sorted(available)) or "none (the operator configured no secrets)"
            raise SecretError(
                f"secret {name!r} is not configured on this server; available: {offer}"
            )
        chosen[name] = available[name]
    return chosen


def for_box(
    available: Mapping[str, Secret], names: Iterable[str] | None, network_enabled: bool
) -> dict[str, Secret]:
    """The secrets a new box asked for (none: empty); SecretError if it cannot have them."""
    if not names:
        return {}
    if not network_enabled:
        raise SecretError(
            "secrets were given with network mode 'disabled'; a secret is only used in the "
            "box's outbound requests, so enable the network"
        )
    return choose(available, names)


class Substitution:
    """Swaps placeholders for values in one box's outbound requests."""

    def __init__(self, secrets: Mapping[str, Secret]) -> None:
        #: By the secret's own name (what its placeholder and variable carry), whatever
        #: key the caller held it under.
        self.secrets = {secret.name: secret for secret in secrets.values()}

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def wanted_by(self, host: str) -> bool:
        """Whether requests to ``host`` may need a value (so HTTPS to it is opened)."""
        return any(s.for_host(host) for s in self.secrets.values())

    def apply(self, data: bytes, host: str) -> bytes:
        """``data`` with this box's placeholders replaced for ``host``.

        SecretError (naming the secret and host, never the value) when a placeholder
        of this box's secret goes to a host it is not for. Placeholders of secrets
        the box was not given are left alone (they are only text).
        """
        if b"<BOXLITE_SECRET:" not in data:
            return data

        def swap(match: re.Match[bytes]) -> bytes:
            name = match.group(1).decode()
            secret = self.secrets.get(name)
            if secret is None:
                return match.group(0)
            if not secret.for_host(host):
                raise SecretError(
                    f"the request carries the placeholder of secret {name} to {host}, which "
                    f"is not one of its hosts ({', '.join(secret.hosts)}); it was not sent"
                )
            return secret.value.encode()

        return PLACEHOLDER_RE.sub(swap, data)

    def stream(self, host: str) -> StreamSubstitution:
        """``apply`` for a body that arrives in pieces (see ``StreamSubstitution``)."""
        return StreamSubstitution(self, host)

    def env(self) -> dict[str, str]:
        """What the box's commands see: each name holding its placeholder."""
        return {name: placeholder(name) for name in self.secrets}


class StreamSubstitution:
    """``Substitution.apply`` over a body that arrives in pieces (chunked requests).

    A placeholder may be split across pieces, so ``feed`` holds back a tail that
    could still become one: from the last ``<`` with no ``>`` after it, when it
    is shorter than the longest placeholder (a placeholder holds no ``<``, so
    nothing before that point can be part of an unfinished one). What
    ``feed``/``finish`` return, joined, equals ``apply`` of the whole body.
    """

    def __init__(self, substitution: Substitution, host: str) -> None:
        self._substitution = substitution
        self._host = host
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        data = self._held + data
        cut = data.rfind(b"<")
        if cut < 0 or b">" in data[cut:] or len(data) - cut >= PLACEHOLDER_MAX:
            cut = len(data)
        self._held = data[cut:]
        return self._substitution.apply(data[:cut], self._host)

    def finish(self) -> bytes:
        data, self._held = self._held, b""
        return self._substitution.apply(data, self._host)
