"""Hypothesis strategies for tool arguments, built from the served JSON input schemas.

``arguments(schema, pool)`` draws a valid-shaped argument object; ``hostile(schema,
pool)`` draws one that breaks the schema on purpose (wrong types, missing required
fields, unknown fields, oversized strings, unicode and NUL bytes, negative and
absurd numbers, not an object at all). Both read only the JSON Schema keywords the
server serves (``type``, ``anyOf``, ``$ref``/``$defs``, ``enum``, ``properties``,
``required``, ``additionalProperties``, ``patternProperties``, ``propertyNames``,
``min/maxLength``, ``pattern``, ``minimum``/``maximum``/``exclusiveMinimum``,
``items``, ``min/maxItems``, ``maxProperties``), so a new tool or field is fuzzed
without changes here.

Random strings alone would only ever meet "no such box", so string fields whose
names say what they hold (``box``, ``execution_id``, paths, ``command`` ...) draw
most of the time from a ``Pool`` of values that reach deeper: the fuzz owner's real
box ids and names, execution ids, snapshot names, paths in the box, host paths
inside and outside the allowed root (``..``, absolute, through planted symlinks),
real commands. (``hypothesis-jsonschema`` does the schema half of this; it is not a
dependency of this project and would not know the pool.)
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

Schema = dict[str, Any]

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)

TRAVERSAL = [
    "../../../../etc/passwd",
    "..",
    "../",
    "/..",
    "/../../etc/shadow",
    "/tmp/../../../../etc/passwd",
    "./../x",
    "%2e%2e/%2e%2e/etc/passwd",
    "....//....//etc/passwd",
    "/proc/self/root/etc/passwd",
    "\\..\\..\\windows",
]
WEIRD_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\n",
    "\r\n",
    "\t",
    "é",
    "日本語",
    "😀" * 3,
    "\u202e\u0633",
    "e\u0301",
    "\ufeff",
    "\uffff",
    "\uff46\uff55\uff4c\uff4c",
    "%s%n%x",
    "${HOME}",
    "$(id)",
    "`id`",
    "' OR 1=1 --",
    "<script>",
    "null",
    "-1",
    "NaN",
    "Infinity",
]
ABSURD_NUMBERS = [
    -1,
    -0.0,
    0,
    0.0,
    1e-308,
    5e-324,
    -1e308,
    1e308,
    2**31,
    2**53 + 1,
    2**63,
    2**64 + 1,
    -(2**63) - 1,
    10**30,
    86400.0001,
    3.5,
    1.5,
]
REAL_COMMANDS = [
    "true",
    "false",
    "echo hi",
    "exit 3",
    "cat /etc/hostname",
    "ls /",
    "printf 'a\\0b'",
    "head -c 100000 /dev/zero | tr '\\0' x",
    "sleep 0.2",
    "echo out; echo err >&2",
    "kill -9 $$",
    "cat",
    "yes | head -n 1000",
    "printf '\\377\\376'",
    "ulimit -a",
    "id",
    "pwd",
    "env",
    "ls /nonexistent",
]
SIGNALS: list[Any] = [
    "TERM",
    "INT",
    "HUP",
    "KILL",
    "USR1",
    "SIGTERM",
    "sigint",
    "SIG9",
    9,
    15,
    0,
    -1,
    65,
    2**40,
    "NOPE",
    "",
    "SIG",
    "SIGSIGTERM",
]


@dataclass
class Pool:
    """Values worth drawing, refreshed as the fuzz run's boxes and executions change."""

    boxes: list[str] = field(default_factory=lambda: ["dev"])  # ids and names
    executions: list[str] = field(default_factory=lambda: ["exec-0000000000000000"])
    snapshots: list[str] = field(default_factory=lambda: ["s"])
    box_paths: list[str] = field(
        default_factory=lambda: [
            "/",
            "/tmp",
            "/tmp/fuzz",
            "/tmp/fuzz/",
            "/etc/hostname",
            "/etc/passwd",
            "/root",
            "/dev/null",
            "/dev/zero",
            "/proc/self/status",
            "/proc/kcore",
            "/sys/kernel",
            "/tmp/a b",
            "/tmp/" + "d" * 200,
            "/nonexistent/deep/file",
            "/tmp/../etc/hostname",
        ]
    )
    host_paths: list[str] = field(
        default_factory=lambda: [
            "fuzz-out",
            "fuzz-out/",
            "exports/x.boxlite",
            "exports/",
            "x.boxlite",
            "in.txt",
            "indir",
            "indir/",
            "fixture.boxlite",
            "missing/x.boxlite",
        ]
    )
    outside_paths: list[str] = field(default_factory=list)  # absolute, outside the root
    rootfs_paths: list[str] = field(default_factory=lambda: ["/", "/nonexistent", "/etc"])

    def for_field(self, name: str) -> list[Any]:
        """Interesting values for a string field, by its name (empty: none known)."""
        if name == "box":
            return [*self.boxes * 4, "mcp.0123456789ab.e.dev", "dev/../dev", "DEV", "*", "."]
        if name == "execution_id":
            return [*self.executions * 4, "exec-", "exec-" + "0" * 16, "../exec"]
        if name in ("path", "box_path", "working_dir", "guest_path"):
            return self.box_paths + TRAVERSAL
        if name == "host_path":
            return self.host_paths + self.outside_paths + TRAVERSAL
        if name == "rootfs_path":
            return self.rootfs_paths + self.outside_paths
        if name == "image":
            return ["host", "python:3.12-slim", "docker.io/library/alpine:latest", "x" * 512]
        if name == "name":
            return [*self.snapshots, "dev", "fuzzbox", "a", "A-1.b_c", "x" * 100]
        if name in ("command",):
            return REAL_COMMANDS
        if name in ("content", "text", "stdin"):
            return ["hello\n", "", "aGVsbG8=", "\x00\x01", "line\n" * 1000]
        if name == "data_base64":
            return ["aGVsbG8K", "", "!!!", "aGVsbG8", "=" * 8]
        if name == "encoding":
            return ["auto", "text", "base64", "utf-16", ""]
        return []


def _resolve(schema: Schema, defs: Schema) -> Schema:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(defs.get(ref.rsplit("/", 1)[1], {}))
    return schema


def _string(schema: Schema, name: str, pool: Pool) -> st.SearchStrategy[Any]:
    low = int(schema.get("minLength", 0))
    high = min(int(schema.get("maxLength", 200)), 200)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        base = st.from_regex(pattern, fullmatch=False)
    else:
        base = st.text(min_size=low, max_size=max(low, high))
    base = base.filter(lambda s: low <= len(s) <= int(schema.get("maxLength", 1 << 30)))
    known = pool.for_field(name)
    if known:
        fits = [v for v in known if isinstance(v, str) and _fits(v, schema)]
        if fits:
            return st.one_of(
                st.sampled_from(fits), st.sampled_from(fits), st.sampled_from(fits), base
            )
    return base


def _fits(value: str, schema: Schema) -> bool:
    if not int(schema.get("minLength", 0)) <= len(value) <= int(schema.get("maxLength", 1 << 30)):
        return False
    pattern = schema.get("pattern")
    return not isinstance(pattern, str) or re.search(pattern, value) is not None


def _number(schema: Schema, integer: bool) -> st.SearchStrategy[Any]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    exclusive_low = schema.get("exclusiveMinimum")
    if integer:
        lo = (
            low
            if low is not None
            else (math.floor(exclusive_low) + 1 if exclusive_low is not None else -(2**40))
        )
        hi = high if high is not None else 2**40
        edges = [v for v in (lo, hi, lo + 1, 0, 1) if lo <= v <= hi]
        return st.one_of(st.sampled_from(edges), st.integers(min_value=lo, max_value=hi))
    lo_f = float(low if low is not None else exclusive_low if exclusive_low is not None else -1e9)
    hi_f = float(high if high is not None else 1e9)
    values = st.floats(
        min_value=lo_f,
        max_value=hi_f,
        allow_nan=False,
        allow_infinity=False,
        exclude_min=exclusive_low is not None,
    )
    edges_f = [
        v
        for v in (0.001, 0.5, 1.0, hi_f)
        if lo_f <= v <= hi_f and (exclusive_low is None or v > exclusive_low)
    ]
    return st.one_of(st.sampled_from(edges_f), values) if edges_f else values


def value(schema: Schema, defs: Schema, name: str, pool: Pool) -> st.SearchStrategy[Any]:
    """A value valid under ``schema`` (as far as these keywords go), named ``name``."""
    schema = _resolve(schema, defs)
    if "anyOf" in schema:
        return st.one_of([value(s, defs, name, pool) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return _string(schema, name, pool)
    if kind == "integer":
        if name == "signal":
            return st.sampled_from([s for s in SIGNALS if isinstance(s, int)])
        return _number(schema, integer=True)
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = schema.get("items", {})
        if name == "argv":
            return st.one_of(
                st.sampled_from(
                    [
                        ["true"],
                        ["sh", "-c", "echo hi"],
                        ["ls", "-la", "/"],
                        ["/nonexistent"],
                        ["cat", "/etc/hostname"],
                        ["echo", "\x00"],
                        ["env"],
                    ]
                ),
                st.lists(value(items, defs, "arg", pool), min_size=1, max_size=4),
            )
        return st.lists(
            value(items, defs, name, pool),
            min_size=int(schema.get("minItems", 0)),
            max_size=min(int(schema.get("maxItems", 4)), 4),
        )
    if kind == "object":
        if "properties" in schema:
            return arguments(schema, defs, pool)
        pattern = next(iter(schema.get("patternProperties", {})), None)
        keys = (
            st.from_regex(pattern, fullmatch=True) if pattern else st.text(min_size=1, max_size=12)
        )
        inner = next(iter(schema.get("patternProperties", {}).values()), {"type": "string"})
        return st.dictionaries(
            keys.filter(lambda k: 0 < len(k) <= 256),
            value(inner, defs, "env-value", pool),
            max_size=4,
        )
    return JSON_VALUES


def arguments(
    schema: Schema, defs: Schema | None = None, pool: Pool | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """A valid-shaped argument object for a tool's input schema."""
    defs = {**schema.get("$defs", {}), **(defs or {})}
    pool = pool or Pool()
    properties: Schema = schema.get("properties", {})
    required = set(schema.get("required", []))

    @st.composite
    def draw(draw_: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in required or draw_(st.integers(0, 2)) == 0:
                out[name] = draw_(value(sub, defs, name, pool))
        if draw_(st.integers(0, 9)):  # mostly: the rules no schema keyword can state
            _coherent(out, properties, draw_, defs, pool)
        return out

    return draw()


def _coherent(
    out: dict[str, Any], properties: Schema, draw: st.DrawFn, defs: Schema, pool: Pool
) -> None:
    """Apply the cross-field rules the tool models check and JSON Schema cannot say.

    Known by field name: exactly one of ``command``/``argv``; at most one of
    ``text``/``data_base64`` and, with neither, ``close``; at most one of
    ``image``/``rootfs_path``; base64 ``content`` when ``encoding`` is base64.
    """

    def pick(a: str, b: str, exactly: bool) -> None:
        if a not in properties or b not in properties:
            return
        has_a, has_b = out.get(a) is not None, out.get(b) is not None
        if has_a and has_b:
            out.pop(draw(st.sampled_from([a, b])))
        elif exactly and not has_a and not has_b:
            chosen = draw(st.sampled_from([a, b]))
            sub = properties[chosen]
            out[chosen] = draw(value(sub.get("anyOf", [sub])[0], defs, chosen, pool))

    pick("command", "argv", exactly=True)
    pick("image", "rootfs_path", exactly=False)
    pick("text", "data_base64", exactly=False)
    if "close" in properties and out.get("text") is None and out.get("data_base64") is None:
        out["close"] = True
    if out.get("encoding") == "base64" and isinstance(out.get("content"), str):
        out["content"] = base64.b64encode(out["content"].encode("utf-8", "replace")).decode()
    if isinstance(out.get("data_base64"), str) and draw(st.booleans()):
        out["data_base64"] = base64.b64encode(
            out["data_base64"].encode("utf-8", "replace")
        ).decode()


MUTATIONS = (
    "retype",
    "drop-required",
    "unknown-field",
    "huge-string",
    "weird-text",
    "nul",
    "absurd-number",
    "traversal",
    "null",
    "not-an-object",
    "empty-object",
)


def _wrong_type(sub: Schema) -> st.SearchStrategy[Any]:
    kinds = {s.get("type") for s in sub.get("anyOf", [sub])}
    options: list[st.SearchStrategy[Any]] = []
    if "string" not in kinds:
        options.append(st.text(max_size=20))
    if not kinds & {"integer", "number"}:
        options.append(st.integers(min_value=-(2**70), max_value=2**70))
        options.append(st.floats(allow_nan=False, allow_infinity=False))
    if "boolean" not in kinds:
        options.append(st.booleans())
    if "array" not in kinds:
        options.append(st.lists(JSON_SCALARS, max_size=3))
    if "object" not in kinds:
        options.append(st.dictionaries(st.text(max_size=5), JSON_SCALARS, max_size=3))
    if "null" not in kinds:
        options.append(st.none())
    return st.one_of(options) if options else JSON_VALUES


def _string_fields(schema: Schema) -> list[str]:
    out = []
    for name, sub in schema.get("properties", {}).items():
        kinds = {s.get("type") for s in sub.get("anyOf", [sub])}
        if "string" in kinds:
            out.append(name)
    return out


def _number_fields(schema: Schema) -> list[str]:
    out = []
    for name, sub in schema.get("properties", {}).items():
        kinds = {s.get("type") for s in sub.get("anyOf", [sub])}
        if kinds & {"integer", "number"}:
            out.append(name)
    return out


@st.composite
def hostile(
    draw: st.DrawFn,
    schema: Schema,
    pool: Pool | None = None,
    max_huge: int = 17 << 20,
    mutation: str | None = None,
) -> tuple[str, Any]:
    """(mutation, arguments): a valid-shaped object broken in one deliberate way.

    ``mutation`` picks the way (one of ``MUTATIONS``); None lets hypothesis choose,
    which favours the first ones.
    """
    pool = pool or Pool()
    args: Any = draw(arguments(schema, pool=pool))
    properties: Schema = schema.get("properties", {})
    mutation = mutation or draw(st.sampled_from(MUTATIONS))
    strings = _string_fields(schema)
    numbers = _number_fields(schema)
    if mutation == "retype" and properties:
        name = draw(st.sampled_from(sorted(properties)))
        args[name] = draw(_wrong_type(properties[name]))
    elif mutation == "drop-required" and schema.get("required"):
        args.pop(draw(st.sampled_from(sorted(schema["required"]))), None)
    elif mutation == "unknown-field":
        key = draw(
            st.sampled_from(
                ["x", "", "__proto__", "box ", "Box", "_meta", "arguments", "$ref", "é"]
            )
            | st.text(min_size=1, max_size=12)
        )
        if key not in properties:
            args[key] = draw(JSON_VALUES)
    elif mutation == "huge-string" and strings:
        name = draw(st.sampled_from(strings))
        limit = max(
            (int(s.get("maxLength", 0)) for s in properties[name].get("anyOf", [properties[name]])),
            default=0,
        )
        size = min(draw(st.sampled_from([limit + 1, 65_537, 1 << 20])), max_huge)
        args[name] = draw(st.sampled_from(["x", "é", "\x00", "/"])) * size
    elif mutation in ("weird-text", "nul", "traversal") and strings:
        name = draw(st.sampled_from(strings))
        if mutation == "weird-text":
            args[name] = draw(
                st.sampled_from(WEIRD_TEXT)
                | st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40)
            )
        elif mutation == "nul":
            base = str(args.get(name) or "x")
            at = draw(st.integers(min_value=0, max_value=len(base)))
            args[name] = base[:at] + "\x00" + base[at:]
        else:
            args[name] = draw(st.sampled_from(TRAVERSAL))
    elif mutation == "absurd-number" and numbers:
        args[draw(st.sampled_from(numbers))] = draw(st.sampled_from(ABSURD_NUMBERS))
    elif mutation == "null" and properties:
        args[draw(st.sampled_from(sorted(properties)))] = None
    elif mutation == "not-an-object":
        args = draw(
            st.lists(JSON_SCALARS, max_size=3) | st.text(max_size=10) | st.integers() | st.none()
        )
    elif mutation == "empty-object":
        args = {}
    else:  # the schema has nothing this mutation could break: any junk object
        args = draw(
            st.dictionaries(
                st.sampled_from([*properties, "x", ""]) if properties else st.text(max_size=5),
                JSON_VALUES,
                max_size=4,
            )
        )
        mutation = "junk-object"
    return mutation, args
