"""The contract checker's rules, on hand-made requests and responses."""

from __future__ import annotations

import json

import pytest

from tools.boxlite_server.validation import ContractChecker

BOX = {
    "box_id": "01HJK4TNRPQSXYZ8WM6NCVT9R5",
    "name": None,
    "status": "running",
    "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-01T00:00:00Z",
    "pid": None,
    "image": "host",
    "cpus": 2,
    "memory_mib": 512,
}


@pytest.fixture(scope="module")
def checker() -> ContractChecker:
    return ContractChecker()


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_box_responses(checker: ContractChecker) -> None:
    old, new = checker.operation("0.9", "getBox"), checker.operation("0.10", "getBox")
    assert checker.check_response("0.9", old, "GET", 200, "application/json", body(BOX)) == []
    short_id = {**BOX, "box_id": "abc", "status": "failed"}
    problems = checker.check_response("0.9", old, "GET", 200, "application/json", body(short_id))
    assert any("box_id" in p for p in problems) and any("status" in p for p in problems)
    # 0.10 takes any opaque id and knows "failed".
    assert checker.check_response("0.10", new, "GET", 200, "application/json", body(short_id)) == []
    assert checker.check_response("0.9", old, "GET", 201, "application/json", body(BOX)) == [
        "status 201 is not documented for getBox"
    ]
    assert checker.check_response("0.9", old, "GET", 200, "text/plain", b"x")


def test_error_responses(checker: ContractChecker) -> None:
    op = checker.operation("0.9", "importBox")
    clash = {"error": {"message": "exists", "type": "AlreadyExistsError", "code": 409}}
    assert checker.check_response("0.9", op, "POST", 409, "application/json", body(clash)) == []
    wrong_type = {"error": {"message": "x", "type": "NotFoundError", "code": 409}}
    assert (
        "does not fit status 409"
        in checker.check_response("0.9", op, "POST", 409, "application/json", body(wrong_type))[0]
    )
    new_style = {"error": {"message": "x", "type": "NotFoundError", "code": "not_found"}}
    assert checker.check_response("0.9", op, "POST", 404, "application/json", body(new_style))
    assert (
        checker.check_response(
            "0.10",
            checker.operation("0.10", "importBox"),
            "POST",
            404,
            "application/json",
            body(new_style),
        )
        == []
    )


def test_requests(checker: ContractChecker) -> None:
    create = checker.operation("0.10", "createBox")
    ok = checker.check_request(
        create,
        {},
        [],
        {"content-type": "application/json"},
        body({"image": "alpine:latest", "network": {"mode": "enabled"}, "detach": False}),
    )
    assert ok == []
    extra = checker.check_request(
        create, {}, [], {"content-type": "application/json"}, body({"ports": []})
    )
    assert "ports" in extra[0]
    token = checker.operation("0.9", "getToken")
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert (
        checker.check_request(
            token, {}, [], form, b"grant_type=client_credentials&client_id=a&client_secret=b"
        )
        == []
    )
    assert checker.check_request(token, {}, [], form, b"grant_type=password")
    start = checker.operation("0.9", "startBox")
    assert checker.check_request(start, {"prefix": "default", "box_id": "b"}, [], {}, b"{}") == [
        "this operation takes no request body"
    ]


def test_every_error_kind_has_a_documented_shape(checker: ContractChecker) -> None:
    from boxlite_mcp.runtime.errors import ERRORS_BY_KIND
    from tools.boxlite_server.errors import WIRE_ERRORS, error_body

    assert set(ERRORS_BY_KIND) <= set(WIRE_ERRORS)
    for kind, wire in WIRE_ERRORS.items():
        for generation in ("0.9", "0.10"):
            payload = error_body(generation, wire, f"a {kind}", "req_1")
            problems = checker.check_response(
                generation, None, "GET", wire.status, "application/json", body(payload)
            )
            assert problems == [], (kind, generation, problems)
