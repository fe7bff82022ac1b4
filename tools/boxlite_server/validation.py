"""Strict mode: requests and responses checked against the OpenAPI documents.

Each route names its operation (``operationId``) and generation; the checker
validates path, query and header parameters, the request body, the response
status (documented, or one every operation may answer: see ``ALWAYS_ALLOWED``),
the content type and the JSON body, with the documents' own component schemas
(JSON Schema 2020-12, as OpenAPI 3.1 says). Both documents still use the 3.0
``nullable: true`` idiom; it is read as "or null", which is what they mean.

Deviations become ``Violation`` records: the server answers a bad request with
400 and a bad response of its own with 500, both naming the rule broken.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import yaml
from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .config import Generation

log = logging.getLogger("boxlite_server.strict")

DOCS_DIR = Path(__file__).resolve().parent / "openapi"
DOC_FILES: dict[Generation, str] = {"0.9": "rest-api-v0.9.yaml", "0.10": "box-api-v0.10.yaml"}

#: Error types each error status may carry (both documents' templates: 400
#: BadRequest, 401 Unauthorized, 404 NotFound, 409 Conflict, 422 Unprocessable).
#: An operation may answer an error status it does not list (OpenAPI response
#: lists need not be exhaustive, and servers answer e.g. 409 to a name clash on
#: import), but the body must be an ErrorResponse whose type fits the status.
#: Success statuses must be listed.
STATUS_TYPES: dict[int, frozenset[str]] = {
    400: frozenset({"InvalidArgumentError", "UnsupportedError", "ConfigError"}),
    401: frozenset({"UnauthorizedError", "AuthError"}),
    403: frozenset({"UnauthorizedError", "AuthError"}),
    404: frozenset({"NotFoundError"}),
    409: frozenset({"AlreadyExistsError", "InvalidStateError", "StoppedError"}),
    422: frozenset({"ImageError", "InvalidArgumentError"}),
}

ViolationKind = Literal["request", "response", "stream", "exception"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One deviation from the contract, as recorded for the test harness."""

    kind: ViolationKind
    generation: str
    operation: str
    method: str
    path: str
    message: str
    status: int | None = None

    def __str__(self) -> str:
        where = f"{self.method} {self.path} ({self.generation} {self.operation})"
        status = f" -> {self.status}" if self.status is not None else ""
        return f"[{self.kind}] {where}{status}: {self.message}"


@dataclass(slots=True)
class Parameter:
    name: str
    location: str  # path, query, header
    required: bool
    schema: dict[str, Any]


@dataclass(slots=True)
class Operation:
    generation: Generation
    operation_id: str
    method: str
    path: str
    parameters: list[Parameter]
    body_required: bool
    body_content: dict[str, dict[str, Any] | None] | None
    responses: dict[int, dict[str, dict[str, Any] | None]]
    idempotent_key: bool = field(default=False)


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class OpenApiDocument:
    """One OpenAPI document: operations by id and validators for its schemas."""

    def __init__(self, generation: Generation, path: Path) -> None:
        self.generation = generation
        self._uri = f"urn:boxlite-api:{generation}"
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        self.doc: dict[str, Any] = self._convert(raw)
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(self._uri, resource)
        self._validators: dict[int, Draft202012Validator] = {}
        self._lock = threading.Lock()
        self.operations: dict[str, Operation] = {}
        for path_template, item in self.doc["paths"].items():
            shared = item.get("parameters", [])
            for method in ("get", "put", "post", "delete", "head", "patch"):
                if method in item:
                    op = self._operation(path_template, method, item[method], shared)
                    self.operations[op.operation_id] = op

    def _convert(self, node: Any) -> Any:
        """Nullable → type union; local refs → refs into this document's URI."""
        if isinstance(node, list):
            return [self._convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: self._convert(value) for key, value in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            out["$ref"] = self._uri + ref
        if out.pop("nullable", False) is True:
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            elif "$ref" in out:
                out = {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], **out}
        return out

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """Follow a ``$ref`` to a component (parameters, responses)."""
        while "$ref" in node:
            pointer = node["$ref"].split("#", 1)[1]
            target: Any = self.doc
            for part in pointer.strip("/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def _operation(
        self, path: str, method: str, spec: dict[str, Any], shared: list[dict[str, Any]]
    ) -> Operation:
        params: dict[tuple[str, str], Parameter] = {}
        for raw in [*shared, *spec.get("parameters", [])]:
            p = self.resolve(raw)
            params[(p["in"], p["name"].lower())] = Parameter(
                p["name"], p["in"], bool(p.get("required", False)), p.get("schema", {})
            )
        body = spec.get("requestBody")
        body_content: dict[str, dict[str, Any] | None] | None = None
        if body is not None:
            body = self.resolve(body)
            body_content = {
                _media(ct): media.get("schema") for ct, media in body.get("content", {}).items()
            }
        responses: dict[int, dict[str, dict[str, Any] | None]] = {}
        for status, raw_response in spec.get("responses", {}).items():
            try:
                response = self.resolve(raw_response)
            except KeyError:
                # rest-api-v0.9.yaml's importBox names a missing ValidationError
                # template; every error template there is an ErrorResponse.
                response = {
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"{self._uri}#/components/schemas/ErrorResponse"}
                        }
                    }
                }
            responses[int(status)] = {
                _media(ct): media.get("schema") for ct, media in response.get("content", {}).items()
            }
        return Operation(
            generation=self.generation,
            operation_id=spec["operationId"],
            method=method.upper(),
            path=path,
            parameters=list(params.values()),
            body_required=bool(body and body.get("required", False)),
            body_content=body_content,
            responses=responses,
            idempotent_key=("header", "idempotency-key") in params,
        )

    def errors(self, schema: dict[str, Any], value: Any) -> list[str]:
        """Schema violations of ``value``, as short readable lines."""
        with self._lock:
            validator = self._validators.get(id(schema))
            if validator is None:
                validator = Draft202012Validator(
                    schema, registry=self._registry, format_checker=FormatChecker()
                )
                self._validators[id(schema)] = validator
        found = []
        for error in validator.iter_errors(value):
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            found.append(f"{where}: {error.message}")
        return found[:10]

    def schema(self, name: str) -> dict[str, Any]:
        schema: dict[str, Any] = self.doc["components"]["schemas"][name]
        return schema


def _coerce(schema: dict[str, Any], values: list[str]) -> tuple[Any, str | None]:
    """A parameter's string value(s) as the JSON type its schema wants."""
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items", {})
        out = []
        for value in values:
            item, problem = _coerce(items, [value])
            if problem:
                return None, problem
            out.append(item)
        return out, None
    value = values[-1]
    try:
        if kind == "integer":
            return int(value), None
        if kind == "number":
            return float(value), None
    except ValueError:
        return None, f"{value!r} is not a {kind}"
    if kind == "boolean":
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true", None
        return None, f"{value!r} is not a boolean (true or false)"
    return value, None


class ContractChecker:
    """Both documents, and the checks strict mode runs."""

    def __init__(self, docs_dir: Path = DOCS_DIR) -> None:
        self.documents = {
            gen: OpenApiDocument(gen, docs_dir / name) for gen, name in DOC_FILES.items()
        }

    def operation(self, generation: Generation, operation_id: str) -> Operation:
        return self.documents[generation].operations[operation_id]

    def check_request(
        self,
        op: Operation,
        path_params: Mapping[str, str],
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> list[str]:
        doc = self.documents[op.generation]
        problems: list[str] = []
        query_values: dict[str, list[str]] = {}
        for key, value in query:
            query_values.setdefault(key, []).append(value)
        for param in op.parameters:
            if param.location == "path":
                if param.name not in path_params:
                    continue  # e.g. a 0.10 server without a routing prefix
                raw: list[str] | None = [path_params[param.name]]
            elif param.location == "query":
                raw = query_values.get(param.name)
            elif param.location == "header":
                header = headers.get(param.name.lower())
                raw = None if header is None else [header]
            else:
                continue
            if raw is None:
                if param.required:
                    problems.append(f"missing required {param.location} parameter {param.name}")
                continue
            value, problem = _coerce(param.schema, raw)
            if problem:
                problems.append(f"{param.location} parameter {param.name}: {problem}")
                continue
            problems += [
                f"{param.location} parameter {param.name}: {line}"
                for line in doc.errors(param.schema, value)
            ]
        problems += self._check_request_body(op, headers.get("content-type"), body)
        return problems

    def _check_request_body(
        self, op: Operation, content_type: str | None, body: bytes | None
    ) -> list[str]:
        doc = self.documents[op.generation]
        media = _media(content_type)
        empty = not body
        if op.body_content is None:
            return [] if empty else ["this operation takes no request body"]
        binary = all(
            m not in ("application/json", "application/x-www-form-urlencoded")
            for m in op.body_content
        )
        if empty and (binary or not op.body_required):
            return []
        if media not in op.body_content:
            return [
                f"content-type {media or '(none)'} is not one of "
                f"{', '.join(sorted(op.body_content))}"
            ]
        schema = op.body_content[media]
        if media == "application/json":
            try:
                value = json.loads(body or b"")
            except ValueError as exc:
                return [f"request body is not JSON: {exc}"]
        elif media == "application/x-www-form-urlencoded":
            value = dict(parse_qsl((body or b"").decode("latin-1"), keep_blank_values=True))
        else:
            return []
        if schema is None:
            return []
        return [f"request body {line}" for line in doc.errors(schema, value)]

    def check_response(
        self,
        generation: Generation,
        op: Operation | None,
        method: str,
        status: int,
        content_type: str | None,
        body: bytes | None,
    ) -> list[str]:
        """Problems with a response. ``body`` is None for a streamed body (not checked)."""
        doc = self.documents[generation]
        media = _media(content_type)
        documented = op.responses.get(status) if op is not None else None
        if documented is None and status < 400:
            name = op.operation_id if op is not None else "this path"
            return [f"status {status} is not documented for {name}"]
        if status >= 400 and method != "HEAD":
            problems = self._check_json(doc, doc.schema("ErrorResponse"), media, body)
            if not problems and body:
                problems = self._check_error_type(status, body)
            return problems
        if method == "HEAD" or not documented:
            if body:
                return [f"status {status} documents no body, but {len(body)} bytes were sent"]
            return []
        if media not in documented:
            return [
                f"content-type {media or '(none)'} is not one of "
                f"{', '.join(sorted(documented))} for status {status}"
            ]
        schema = documented[media]
        if media != "application/json" or schema is None or body is None:
            return []
        return self._check_json(doc, schema, media, body)

    @staticmethod
    def _check_error_type(status: int, body: bytes) -> list[str]:
        kind = json.loads(body)["error"]["type"]
        fits = STATUS_TYPES.get(status)
        if fits is not None and kind not in fits:
            return [
                f"error type {kind} does not fit status {status} "
                f"(expected one of {', '.join(sorted(fits))})"
            ]
        return []

    @staticmethod
    def _check_json(
        doc: OpenApiDocument, schema: dict[str, Any], media: str, body: bytes | None
    ) -> list[str]:
        if body is None:
            return []
        if media != "application/json":
            return [f"error body has content-type {media or '(none)'}, not application/json"]
        try:
            value = json.loads(body)
        except ValueError as exc:
            return [f"body is not JSON: {exc}"]
        return [f"body {line}" for line in doc.errors(schema, value)]


class ViolationLog:
    """What strict mode found; the harness asserts it stays empty."""

    def __init__(self) -> None:
        self.items: list[Violation] = []

    def record(self, violation: Violation) -> None:
        log.error("contract violation %s", violation)
        self.items.append(violation)
