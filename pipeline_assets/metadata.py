"""Helpers that turn results into metadata that reads well in the Dagster UI."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg


def key_value_table(rows: Mapping[str, Any], *, key: str = "name", value: str = "value") -> dg.MetadataValue:
    """A two-column table (values shown as text so mixed types line up)."""
    schema = dg.TableSchema(columns=[dg.TableColumn(key, "string"), dg.TableColumn(value, "string")])
    records = [dg.TableRecord({key: str(k), value: _fmt(v)}) for k, v in rows.items()]
    return dg.MetadataValue.table(records=records, schema=schema)


def records_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> dg.MetadataValue:
    """A table from dict rows; ``columns`` are (name, description-with-unit) pairs."""
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, "string", description=desc) for name, desc in columns]
    )
    records = [dg.TableRecord({name: _fmt(row.get(name)) for name, _ in columns}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=schema)


def png_markdown(png: bytes, *, alt: str) -> dg.MetadataValue:
    """Embed a small PNG (DESIGN.md: there is no image metadata type)."""
    return dg.MetadataValue.md(png_inline(png, alt=alt))


def png_inline(png: bytes, *, alt: str) -> str:
    """A PNG as Markdown for a materialization's description.

    Dagster 1.13's UI renders an image inline only there (the asset's *Events* tab, under
    "Description"); in metadata every chart sits behind "[Show Markdown]", as any Markdown
    entry longer than 1,000 characters does.
    """
    encoded = base64.b64encode(png).decode()
    return f"![{alt}](data:image/png;base64,{encoded})"


def figure_png(fig: Any) -> bytes:
    """Render a matplotlib figure to PNG bytes at a size that stays small in metadata."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    return buffer.getvalue()


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def number(value: float, *, digits: int = 4) -> dg.MetadataValue:
    """A float rounded to ``digits`` significant digits: the UI shows metadata verbatim."""
    return dg.MetadataValue.float(float(f"{value:.{digits}g}"))
