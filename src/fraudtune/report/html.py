"""HTML building blocks for the static dashboard: escaping, tables, embedded images, the page shell.

Everything from run data goes through `esc`; the page's Content-Security-Policy allows no network access and only
the one inline script whose hash it names, so even a missed escape could neither load nor run anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# Marks the page as rendered and counts images that decoded (the browser test reads both from the DOM).
CHECK_SCRIPT = (
    "window.addEventListener('load',function(){var i=document.images,ok=0;"
    "for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0){ok++;}}"
    "document.body.setAttribute('data-images-ok',ok+'/'+i.length);"
    "document.body.setAttribute('data-rendered','yes');});"
)
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#12355b;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:24px}
header p{margin:0;opacity:.85}nav{background:#fff;border-bottom:1px solid #dde;padding:8px 28px;position:sticky;top:0}
nav a{margin-right:14px;color:#12355b;text-decoration:none;font-size:14px}main{padding:8px 28px 40px;max-width:1400px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;margin:18px 0;padding:6px 20px 16px}
h2{font-size:19px;color:#12355b}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #d8dce2;padding:4px 8px;
text-align:right;vertical-align:top}th{background:#eef1f5}td.l,th.l{text-align:left}
.missing{color:#8a5300;background:#fff7e6;border-left:4px solid #e69f00;padding:6px 10px}
.note{color:#555;font-size:13px}.good{color:#0b7a3e;font-weight:600}.bad{color:#b3261e;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:18px}.card{border:1px solid #e1e4e8;border-radius:6px;padding:6px 12px}
img{max-width:100%;height:auto;border:1px solid #eee}code{background:#f0f2f5;padding:1px 4px;border-radius:3px}
.scroll{overflow-x:auto}.reason{max-width:280px;text-align:left;font-size:12px;color:#333}
"""


def esc(value: Any) -> str:
    """HTML-escape any value (quotes too: values also land in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1, raw: bool = False, cls: str = "") -> str:
    """A table; cells are escaped unless `raw` (then the caller has built them from escaped parts)."""
    cell = (lambda c: c) if raw else esc
    head = "".join(f'<th class="l">{esc(h)}</th>' if i < left else f"<th>{esc(h)}</th>" for i, h in enumerate(header))
    body = []
    for row in rows:
        tds = "".join(f'<td class="l">{cell(c)}</td>' if i < left else f"<td>{cell(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{tds}</tr>")
    attr = f' class="{esc(cls)}"' if cls else ""
    return (
        f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def missing(text: str) -> str:
    return f'<p class="missing">{esc(text)}</p>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def image(path: Path, alt: str) -> str:
    """A PNG embedded as a data URI (the page works offline and as a single file)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole document: header, navigation, sections (id, title, body html)."""
    digest = base64.b64encode(hashlib.sha256(CHECK_SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    nav = "".join(f'<a href="#{esc(sid)}">{esc(name)}</a>' for sid, name, _ in sections)
    body = "".join(section(sid, name, html_) for sid, name, html_ in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{esc(title)}</title><style>{CSS}</style></head>'
        f"<body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav>"
        f"<main>{body}</main><script>{CHECK_SCRIPT}</script></body></html>\n"
    )
