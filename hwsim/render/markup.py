"""A document as blocks (headings, paragraphs, lists, tables, figures, code), written out twice.

The same blocks render as Markdown and as self-contained HTML (figures inlined), so the two
always say the same thing.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Table:
    """A table: column headers (units included) and rows of already formatted cells."""

    headers: list[str]
    rows: list[list[str]]


Block = tuple[str, Any]  # ("h2"|"h3"|"p"|"table"|"figure"|"code"|"diff", payload)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return fence


def render_markdown(blocks: Sequence[Block]) -> str:
    """The blocks as Markdown (figures linked under ``figures/``)."""
    out: list[str] = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + payload)
        elif kind in ("p", "lead"):
            out.append(payload)
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in payload))
        elif kind == "table":
            lines = ["| " + " | ".join(_md_cell(h) for h in payload.headers) + " |"]
            lines.append(
                "|"
                + "|".join("---" if i < 3 else "---:" for i in range(len(payload.headers)))
                + "|"
            )
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in payload.rows]
            out.append("\n".join(lines))
        elif kind == "figure":
            out.append(f"![{payload.alt}](figures/{payload.name})")
        elif kind in ("code", "diff"):
            fence = _fence(payload)
            language = "yaml" if kind == "code" else "diff"
            out.append(f"{fence}{language}\n{payload.rstrip()}\n{fence}")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 78rem; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd;
       padding-bottom: .2rem; margin-top: 2rem; } h3 { font-size: 1.05rem; }
table { border-collapse: collapse; font-size: .8rem; display: block; overflow-x: auto;
        max-width: 100%; }
th, td { border: 1px solid #ccc; padding: .2rem .45rem; }
th { max-width: 11rem; vertical-align: bottom; }
.conclusion { font-size: 1.05rem; background: #eef5ee; border-left: 4px solid #55A868;
       padding: .6rem .9rem; }
pre.diff .add { color: #116329; background: #e6ffec; } pre.diff .del { color: #82071e;
       background: #ffebe9; } pre.diff .hunk { color: #6639ba; }
pre.diff .file { font-weight: bold; }
th { background: #f3f3f3; } td { text-align: right; font-variant-numeric: tabular-nums; }
td:nth-child(-n+3) { text-align: left; } tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; font-size: .8rem; }
code { background: #f0f0f0; padding: 0 .2rem; }
pre code { background: none; padding: 0; }
"""


def render_html(blocks: Sequence[Block]) -> str:
    """The blocks as one self-contained HTML page: inline CSS, figures as data URIs, no JS."""
    title = next((p for k, p in blocks if k == "h1"), "hwsim report")
    body: list[str] = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{_inline_html(payload)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline_html(payload)}</p>")
        elif kind == "lead":
            body.append(f'<p class="conclusion">{_inline_html(payload)}</p>')
        elif kind == "list":
            items = "".join(f"<li>{_inline_html(i)}</li>" for i in payload)
            body.append(f"<ul>{items}</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in payload.headers)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in payload.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "figure":
            data = base64.b64encode(payload.png).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(payload.alt)}" '
                f'src="data:image/png;base64,{data}"></figure>'
            )
        elif kind == "code":
            body.append(f"<pre><code>{html.escape(payload.rstrip())}</code></pre>")
        elif kind == "diff":
            lines = []
            for line in payload.rstrip().split("\n"):
                cls = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "")
                if line.startswith(("+++", "---")):
                    cls = "file"
                text = html.escape(line)
                lines.append(f'<span class="{cls}">{text}</span>' if cls else text)
            body.append('<pre class="diff"><code>' + "\n".join(lines) + "</code></pre>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
