"""report.html: report.md and claims.md as one self-contained page (plots embedded, CSVs as tables)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from experiments.report.write import slug

HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1500px; margin: 1em auto; padding: 0 1em;
       line-height: 1.4; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 2px 6px; vertical-align: top; }
th { background: #eee; }
code { background: #f3f3f3; padding: 0 2px; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.scroll { overflow-x: auto; }
"""


def _inline(text: str) -> str:
    """Markdown inline marks of this report (`code`, **bold**, *italic*) as HTML, the text escaped."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])", r"<em>\1</em>", text)


def _img(folder: Path, name: str, embedded: set) -> str:
    """A PNG of `folder` as a data-URI <img>, once: a repeat or a missing file is named only."""
    path = folder / Path(name).name
    if name in embedded or not path.is_file() or path.suffix != ".png":
        return f"<p><em>({html.escape(name)}{' — shown above' if name in embedded else ''})</em></p>"
    embedded.add(name)
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(name)}" title="{html.escape(name)}">'


def _md_table(lines: list[str]) -> str:
    rows = [
        [_inline(c.strip().replace("\\|", "|")) for c in re.split(r"(?<!\\)\|", ln[1:-1])]
        for ln in lines
        if not re.fullmatch(r"\|(-+\|)+", ln)
    ]
    head = "".join(f"<th>{c}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def markdown_html(text: str, folder: Path, embedded: set, shift: int = 0) -> str:
    """The markdown this module and `claims` write (headings, paragraphs, bullet lists, pipe tables,
    `![x](file.png)` lines) as HTML; images are embedded from `folder` (see `_img`)."""
    out, para, items, table = [], [], [], []

    def flush():
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        if table:
            out.append(_md_table(table))
        para.clear(), items.clear(), table.clear()

    for line in text.splitlines():
        s = line.strip()
        head = re.fullmatch(r"(#{1,6}) (.*)", s)
        image = re.fullmatch(r"!\[[^\]]*\]\(([^)]+)\)", s)
        if not s:
            flush()
        elif s.startswith("|") and s.endswith("|"):
            if not table:
                flush()
            table.append(s)
        elif head:
            flush()
            level = min(6, len(head[1]) + shift)
            claim = re.match(r"\((\w+)\) ", head[2])
            anchor = f"claim-{claim[1]}" if claim else slug(head[2]).lower()
            out.append(f'<h{level} id="{html.escape(anchor)}">{_inline(head[2])}</h{level}>')
        elif image:
            flush()
            out.append(_img(folder, image[1], embedded))
        elif s.startswith(("* ", "- ")):
            if para or table:
                flush()
            items.append(s[2:])
        elif items and line.startswith(" "):
            items[-1] += " " + s
        else:
            if items or table:
                flush()
            para.append(s)
    flush()
    return "\n".join(out)


def report_html(folder: Path, report_md: str, claims_md: str, files: list[str]) -> str:
    """report.html: report.md, the claims checklist (claims.md, with its verdict rules) and every CSV as
    a table, with every PNG of `folder` embedded once as a base64 data URI; no external resources."""
    embedded: set[str] = set()
    body = [markdown_html(report_md, folder, embedded)]
    body += ['<section id="claims">', markdown_html(claims_md, folder, embedded, shift=1), "</section>"]
    rest = sorted(p.name for p in folder.glob("*.png") if p.name not in embedded)
    if rest:
        body += ["<h2>Other plots</h2>", *(_img(folder, name, embedded) for name in rest)]
    body.append('<section id="tables"><h2>Tables (the CSV files)</h2>')
    for name in (f for f in files if f.endswith(".csv")):
        table = pd.read_csv(folder / name)
        rendered = table.to_html(index=False, na_rep="–", border=0, float_format=lambda x: f"{x:.4g}")
        opened = " open" if name.startswith("summary_") else ""
        body.append(
            f"<details{opened}><summary><code>{html.escape(name)}</code> ({len(table)} rows)</summary>"
            f'<div class="scroll">{rendered}</div></details>'
        )
    body.append("</section>")
    title = html.escape(report_md.splitlines()[0].lstrip("# ")) if report_md else "Sweep report"
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f"<style>{HTML_STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
