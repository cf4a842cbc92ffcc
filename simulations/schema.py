"""Messages about keys of a pydantic schema: what a mapping may hold, and the closest known key."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's annotation (``X | None``, ``tuple[X, ...]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None


def known_keys(root: type[BaseModel], parent: Sequence[int | str]) -> list[str]:
    """The keys ``root``'s schema allows in the mapping at ``parent`` (a pydantic error location)."""
    model: type[BaseModel] | None = root
    for part in parent:
        if isinstance(part, int):
            continue  # a list item: the model is already the item's
        field = model.model_fields.get(part) if model else None
        model = model_in(field.annotation) if field else None
    return list(model.model_fields) if model else []


def unknown_key_message(root: type[BaseModel], loc: Sequence[int | str]) -> str:
    """"unknown key; did you mean 'x'?" for the key at ``loc``, or the keys allowed there."""
    known = known_keys(root, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean '{close[0]}'?"
    return f"unknown key; expected one of: {', '.join(known)}" if known else "unknown key"
