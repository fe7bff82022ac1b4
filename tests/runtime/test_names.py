"""The one name rule and the NUL rule of the runtime contract (``runtime.types``)."""

from __future__ import annotations

import pytest

from boxlite_mcp.runtime.errors import InvalidArgumentError
from boxlite_mcp.runtime.types import NAME_MAX_LENGTH, BoxOptions, check_name, check_nul

GOOD = ["a", "dev", "A.b_c-1", "0start", "x" * NAME_MAX_LENGTH]
BAD = ["", "has space", "a/b", "-dash", ".dot", "_under", "x" * (NAME_MAX_LENGTH + 1), "a\n"]


@pytest.mark.parametrize("name", GOOD)
@pytest.mark.parametrize("what", ["box", "snapshot"])
def test_good_names_pass_for_boxes_and_snapshots_alike(name: str, what: str) -> None:
    check_name(name, what)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", BAD)
@pytest.mark.parametrize("what", ["box", "snapshot"])
def test_bad_names_are_refused_saying_the_rule(name: str, what: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"invalid {what} name") as caught:
        check_name(name, what)  # type: ignore[arg-type]
    assert "letters, digits" in caught.value.message


def test_a_name_that_is_not_text_is_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        check_name(None, "snapshot")


def test_the_models_and_check_name_agree() -> None:
    """The box options model uses the same pattern and length as the runtime check."""
    for name in GOOD:
        BoxOptions(name=name)
    for name in BAD:
        with pytest.raises(ValueError):
            BoxOptions(name=name)


def test_a_nul_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgumentError, match="working_dir contains a NUL byte"):
        check_nul("working_dir", "/tmp\0x")
    with pytest.raises(InvalidArgumentError, match="snapshot name contains a NUL byte"):
        check_name("s\0", "snapshot")
    check_nul("working_dir", None)
    check_nul("working_dir", "/tmp")
