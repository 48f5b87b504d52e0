"""HTML escaping, in one place, and the small tables notebooks display.

Every text that reaches HTML (notebook tables of gradient checks and training histories, the
explorer page's title) goes through :func:`html_text`; the explorer's data goes through
:func:`symgrad.derivation.html.json_for_html` (JSON inside a ``<script>``).

>>> html_text("<b>")
'&lt;b&gt;'
"""

from __future__ import annotations

__all__ = ["html_table", "html_text"]


def html_text(text: str) -> str:
    """``text`` escaped for HTML element content and quoted attribute values.

    >>> html_text('<b title="x">&</b>')
    '&lt;b title=&quot;x&quot;&gt;&amp;&lt;/b&gt;'
    """
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def html_table(header: list[str], rows: list[list[str]], caption: str = "") -> str:
    """A small HTML table (notebook displays); every cell and the caption escaped.

    >>> html_table(["name", "value"], [["<x>", "1"]])
    '<table><thead><tr><th>name</th><th>value</th></tr></thead><tbody><tr><td>&lt;x&gt;</td>\
<td>1</td></tr></tbody></table>'
    """
    cap = f"<caption>{html_text(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{html_text(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
