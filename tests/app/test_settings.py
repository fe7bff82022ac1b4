"""Settings from the environment: every field has a variable, lists split by their rule."""

from __future__ import annotations

import os
import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from boxlite_mcp.settings import (
    AUTO_ORDER,
    LIST_SEPARATORS,
    RuntimeChoice,
    RuntimeName,
    Settings,
    env_name,
)


def test_every_list_field_says_how_its_items_are_separated() -> None:
    """A new list field without a separator would be read as one string and refused."""
    lists = {
        name
        for name, field in Settings.model_fields.items()
        if typing.get_origin(field.annotation) is list
    }
    assert lists == set(LIST_SEPARATORS)


def test_lists_split_on_their_separator_and_skip_empty_items(tmp_path: Path) -> None:
    env = {
        env_name("allow_paths"): f"{tmp_path}{os.pathsep}{os.pathsep}/srv",
        env_name("allowed_hosts"): "a.example,,b.example:*",
        env_name("port"): "9000",
    }
    settings = Settings.from_env(env)
    assert settings.allow_paths == [tmp_path, Path("/srv")]
    assert settings.allowed_hosts == ["a.example", "b.example:*"]
    assert settings.port == 9000


def test_flags_win_over_the_environment() -> None:
    settings = Settings.from_env({env_name("port"): "9000"}, port=9001, host=None)
    assert (settings.port, settings.host) == (9001, "127.0.0.1")


def test_a_bad_value_names_the_field() -> None:
    with pytest.raises(ValidationError, match="port"):
        Settings.from_env({env_name("port"): "many"})


def test_the_runtime_choice_is_auto_or_a_runtime_name() -> None:
    assert typing.get_args(RuntimeChoice) == ("auto", *typing.get_args(RuntimeName))
    assert sorted(AUTO_ORDER) == sorted(typing.get_args(RuntimeName))
