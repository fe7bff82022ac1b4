"""Parsed URLs, remembered: the exec hot path must not re-parse the same URLs.

httpx validates every character of a URL it parses; profiled, that was 9 % of the
client's CPU per exec (``docs/benchmarks.md``). A box's exec URL and its server's
origin recur on every call, so they are parsed once (``httpx.URL`` is immutable,
so sharing one is safe).
"""

from __future__ import annotations

import functools

import httpx


@functools.lru_cache(maxsize=256)
def parsed_url(url: str) -> httpx.URL:
    """``httpx.URL(url)``, remembered: httpx checks every character of a URL it parses
    (9 % of the client's CPU per exec, profiled), and a box's exec URL, its
    server's origin and the like recur on every call. ``httpx.URL`` is immutable."""
    return httpx.URL(url)


def origin_of(url: str) -> httpx.URL:
    """The scheme, host and port of an absolute URL (parsed once per origin)."""
    start = url.find("://")
    end = url.find("/", start + 3) if start >= 0 else -1
    return parsed_url(url if end < 0 else url[:end])
