"""Box and snapshot names checked before they reach the SDK.

A caller can slip past the models (``model_construct``) and the SDK passes names
straight on, to a server or the native layer that answers less helpfully. Box
options and exec requests are re-checked by the shared ``runtime.inputs``.
"""

from __future__ import annotations

import re

from ..errors import InvalidArgumentError
from ..types import BOX_NAME_PATTERN

_NAME = re.compile(BOX_NAME_PATTERN)


def name(value: str | None, what: str) -> None:
    """A box or snapshot name: 1 to 128 of letters, digits, '.', '_', '-'."""
    if value is None and what != "snapshot":
        return
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not _NAME.match(value):
        raise InvalidArgumentError(
            f"invalid {what} name {value!r}: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )

