"""Small HTML building blocks for Jupyter displays (``_repr_html_``) of kafkaml's classes.

Every value is escaped unless it is :class:`Html` (markup these helpers made), so a topic
name or an error message can never break a notebook's page. The tables carry no colours of
their own: Jupyter's light and dark themes style them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

__all__ = ["Html", "html_table", "html_rows", "html_error", "format_value"]


class Html(str):
    """Markup that is inserted as it is (not escaped) when nested in another table."""

    __slots__ = ()


def format_value(value: object) -> str:
    """The text shown for ``value``: None as an en dash, counts with thousands separators,
    floats to 4 significant digits (1 decimal from 100 up), everything else as ``str``."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4g}"
    return str(value)


def _cell(value: object) -> str:
    return value if isinstance(value, Html) else html.escape(format_value(value))


_TABLE = '<table class="kafkaml" style="border-collapse:collapse;text-align:left">'
_TITLE = '<caption style="text-align:left;font-weight:bold;padding-bottom:0.3em">{}</caption>'
_TH = '<th style="text-align:left;padding:0.15em 0.8em 0.15em 0">{}</th>'
_TD = '<td style="text-align:left;padding:0.15em 0.8em 0.15em 0">{}</td>'


def html_table(title: str, rows: Iterable[tuple[str, object]]) -> Html:
    """A two-column key/value table under ``title``: one ``(label, value)`` pair a row.

    Values are formatted by :func:`format_value` and escaped; pass :class:`Html` (e.g. the
    result of :func:`html_rows`) to nest markup.
    """
    body = "".join(f"<tr>{_TH.format(html.escape(label))}{_TD.format(_cell(value))}</tr>" for label, value in rows)
    return Html(f"{_TABLE}{_TITLE.format(html.escape(title))}<tbody>{body}</tbody></table>")


def html_rows(header: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None) -> Html:
    """A table with a header row and one row per item of ``rows`` (e.g. a model's inputs);
    values formatted and escaped as in :func:`html_table`."""
    caption = "" if title is None else _TITLE.format(html.escape(title))
    head = "".join(_TH.format(html.escape(name)) for name in header)
    body = "".join("<tr>" + "".join(_TD.format(_cell(v)) for v in row) + "</tr>" for row in rows)
    return Html(f"{_TABLE}{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def html_error(message: str) -> Html:
    """``message`` escaped and marked as an error (red, in light and dark themes alike)."""
    return Html(f'<span class="kafkaml-error" style="color:#d62728">{html.escape(message)}</span>')
