"""HTML building blocks of the report page: escaping, data URIs, tables, figures and the page shell.

The page is one self-contained file: pictures are ``data:`` URIs, the style
is inline, and there is no script and no external reference, so it opens the
same in any browser, offline, or as a mail attachment. Every string that
comes from the user (class names from folder names, paths, flag values)
goes through :func:`esc`.
"""

from __future__ import annotations

import base64
import html
from typing import Any, Iterable, List, Optional, Sequence

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 24px auto; max-width: 1180px;
       color: #1d2733; background: #ffffff; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 2px solid #d7dee7; }
p.sub { color: #56657a; margin-top: 0; } p.note { color: #8a5a00; background: #fff6e0; padding: 6px 10px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #d7dee7; padding: 4px 10px; text-align: left; }
th { background: #eef2f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.weak td { background: #fdecec; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 4px 18px; }
dl.facts dt { color: #56657a; } dl.facts dd { margin: 0; font-weight: 600; }
.row { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
img.plot { max-width: 100%; border: 1px solid #e3e8ef; } .row img.plot { max-width: calc(50% - 8px); }
.gallery { display: flex; flex-wrap: wrap; gap: 10px; }
figure.sample { margin: 0; width: 132px; font-size: 12px; border: 1px solid #e3e8ef; padding: 6px; background: #fafbfc; }
figure.sample img { display: block; margin: 0 auto 4px; image-rendering: pixelated; }
figure.sample.explained { width: 250px; }
figure.sample.explained img { display: inline-block; margin: 0 2px 4px; }
figure.mistake { border-color: #e09a9a; } figure.correct { border-color: #9ad0a4; }
figcaption b { font-weight: 600; }
"""


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML content and quoted attributes."""
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img(png: bytes, alt: str, css: str = "plot") -> str:
    return f'<img class="{esc(css)}" alt="{esc(alt)}" src="{data_uri(png)}">'


def fmt(value: Any, digits: int = 4, missing: str = "\u2013") -> str:
    """A number for a table cell: floats to ``digits`` decimals, None as ``missing`` (an en dash)."""
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def pct(value: Optional[float]) -> str:
    return "\u2013" if value is None else f"{100 * value:.2f}%"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, table_id: Optional[str] = None,
          numeric: Sequence[bool] = (), row_classes: Optional[Sequence[str]] = None) -> str:
    """A table of already formatted cells (each escaped here); ``numeric`` marks columns to right-align."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body: List[str] = []
    for index, row in enumerate(rows):
        css = f' class="{esc(row_classes[index])}"' if row_classes and row_classes[index] else ""
        cells = "".join(f'<td class="num">{esc(c)}</td>' if col < len(numeric) and numeric[col] else f"<td>{esc(c)}</td>"
                        for col, c in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def facts(items: Iterable[Sequence[Any]]) -> str:
    """A definition list of ``(label, value)`` pairs."""
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


def notes(lines: Iterable[str]) -> str:
    return "".join(f'<p class="note">{esc(line)}</p>' for line in lines)


def section(title: str, body: str, section_id: str) -> str:
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{body}</section>'


def sample(png: bytes, caption_lines: Sequence[str], css: str, beside: Optional[bytes] = None) -> str:
    """One gallery tile: the image (and ``beside`` it, its Grad-CAM overlay) and its caption lines (``label: value``, the label in bold)."""
    caption = "<br>".join(f"<b>{esc(line.split(': ', 1)[0])}</b>: {esc(line.split(': ', 1)[1])}" if ": " in line else esc(line)
                          for line in caption_lines)
    pictures = img(png, caption_lines[0], "thumb")
    if beside is not None:
        pictures += img(beside, "Grad-CAM: where the network looked for its prediction", "thumb cam")
        css += " explained"
    return f'<figure class="sample {esc(css)}">{pictures}<figcaption>{caption}</figcaption></figure>'


def document(title: str, subtitle: str, sections: Iterable[str]) -> str:
    """The whole page."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>"
            + "".join(sections) + "</body></html>\n")
