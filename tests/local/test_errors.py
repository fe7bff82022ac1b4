"""SDK failures become the runtime's errors, with the right class and a useful message.

The errors here are the SDK's own exception classes, and (where it can be done
without a VM) failures the SDK really raises.
"""

from __future__ import annotations

import socket

import boxlite
import boxlite.errors as sdk_errors
import pytest

from boxlite_mcp.runtime import errors as ours
from boxlite_mcp.runtime.local import LocalRuntime
from boxlite_mcp.runtime.local.errors import Translator, translate

pytestmark = pytest.mark.anyio

CLASS_TABLE = [
    (sdk_errors.NotFoundError, ours.NotFoundError),
    (sdk_errors.SessionReapedError, ours.NotFoundError),
    (sdk_errors.AlreadyExistsError, ours.AlreadyExistsError),
    (sdk_errors.InvalidStateError, ours.InvalidStateError),
    (sdk_errors.StoppedError, ours.StoppedError),
    (sdk_errors.InvalidArgumentError, ours.InvalidArgumentError),
    (sdk_errors.UnsupportedError, ours.UnsupportedError),
    (sdk_errors.ImageError, ours.ImageError),
    (sdk_errors.NetworkError, ours.UnavailableError),
    (sdk_errors.UpstreamUnavailableError, ours.UnavailableError),
    (sdk_errors.EngineError, ours.InternalError),
    (sdk_errors.StorageError, ours.InternalError),
    (sdk_errors.DatabaseError, ours.InternalError),
    (sdk_errors.MetadataError, ours.InternalError),
    (sdk_errors.ExecutionError, ours.InternalError),
    (sdk_errors.ResourceExhaustedError, ours.InternalError),
    (sdk_errors.InternalError, ours.InternalError),
    (sdk_errors.ConfigError, ours.InvalidArgumentError),
    (sdk_errors.TimeoutError, ours.BoxTimeoutError),
]


def test_every_sdk_error_class_is_mapped() -> None:
    mapped = {sdk for sdk, _ in CLASS_TABLE}
    native = {getattr(sdk_errors, name) for name in sdk_errors.__all__}
    unmapped = (
        native - mapped - {sdk_errors.BoxliteError, sdk_errors.ExecError, sdk_errors.ParseError}
    )
    assert not unmapped, f"SDK error classes without a mapping: {unmapped}"


@pytest.mark.parametrize(("sdk_class", "our_class"), CLASS_TABLE)
def test_sdk_error_classes_map_to_ours(
    sdk_class: type[Exception], our_class: type[ours.BoxliteError]
) -> None:
    error = translate(sdk_class("detail text"), "do the thing")
    assert type(error) is our_class
    assert error.message.startswith("do the thing failed: detail text")


@pytest.mark.parametrize(
    ("text", "our_class"),
    [
        ("not found: box x", ours.NotFoundError),
        ("already exists: y", ours.AlreadyExistsError),
        ("invalid state: z", ours.InvalidStateError),
        ("network error: connect failed", ours.UnavailableError),
        ("engine reported an error: The VM failed to start.", ours.InternalError),
        ("stdin stream not available", ours.InternalError),
    ],
)
def test_plain_runtime_errors_are_mapped_by_their_native_prefix(
    text: str, our_class: type[ours.BoxliteError]
) -> None:
    assert type(translate(RuntimeError(text), "act")) is our_class


@pytest.mark.parametrize(
    ("sdk_class", "text", "our_class"),
    [
        (
            sdk_errors.InvalidArgumentError,
            "box with name 'a' already exists",
            ours.AlreadyExistsError,
        ),
        (
            sdk_errors.StorageError,
            "Failed to pull image 'x' after trying 1 registry",
            ours.ImageError,
        ),
        (
            sdk_errors.StorageError,
            "Container disk not found at /h/disk.qcow2",
            ours.InvalidStateError,
        ),
        (
            sdk_errors.InternalError,
            "copy_into failed (HTTP 400): bad path",
            ours.InvalidArgumentError,
        ),
        (sdk_errors.InternalError, "copy_out failed (HTTP 404): no such file", ours.NotFoundError),
        (
            sdk_errors.InternalError,
            "copy_out failed (HTTP 409): box stopped",
            ours.InvalidStateError,
        ),
        (sdk_errors.ConfigError, "auth: unauthorized (HTTP 401): bad key", ours.AuthError),
    ],
)
def test_messages_refine_a_vague_class(
    sdk_class: type[Exception], text: str, our_class: type[ours.BoxliteError]
) -> None:
    assert type(translate(sdk_class(text), "act")) is our_class


def test_argument_conversion_failures_are_invalid_arguments() -> None:
    try:
        boxlite.BoxOptions(cpus="many")  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as exc:
        assert type(translate(exc, "create a box")) is ours.InvalidArgumentError
    else:
        pytest.fail("the SDK accepted a non-numeric cpus")


def test_unknown_exceptions_are_internal_and_name_their_type() -> None:
    error = translate(KeyError("k"), "act")
    assert type(error) is ours.InternalError
    assert "KeyError" in error.message


def test_our_errors_pass_through_unchanged() -> None:
    original = ours.NotFoundError("mine")
    assert translate(original, "act") is original


def test_long_details_are_cut() -> None:
    assert len(translate(sdk_errors.InternalError("x" * 10_000), "act").message) < 1200


def test_secrets_are_redacted() -> None:
    translator = Translator(("sk-secret-123",))
    error = translator.error(sdk_errors.ConfigError("auth: key sk-secret-123 refused"), "act")
    assert "sk-secret-123" not in error.message
    assert "[REDACTED]" in error.message


async def test_an_unreachable_server_is_unavailable_naming_the_url() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime = LocalRuntime.rest(f"http://127.0.0.1:{port}", api_key="k-very-secret")
    try:
        with pytest.raises(ours.UnavailableError) as caught:
            await runtime.list()
    finally:
        await runtime.aclose()
    assert f"127.0.0.1:{port}" in caught.value.message
    assert "k-very-secret" not in caught.value.message
    assert "running and reachable" in caught.value.message


def test_a_bad_server_url_is_refused_before_any_request() -> None:
    with pytest.raises(ours.InvalidArgumentError, match="http"):
        LocalRuntime.rest("ftp://example.invalid")
