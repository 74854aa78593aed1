"""report.html: report.md and claims.md as one self-contained page (plots embedded, CSVs as tables).

The markdown is converted by the `markdown` package (pipe tables by its `tables` extension); one
tree pass (`_SelfContained`) embeds each PNG once as a data URI, gives headings their anchors and
wraps tables so wide ones scroll.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from xml.etree import ElementTree

import markdown
import pandas as pd
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

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
HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


def _data_uri(folder: Path, name: str, embedded: set) -> str | None:
    """A PNG of `folder` as a data URI, once: None for a repeat, a missing file or not a PNG."""
    path = folder / Path(name).name
    if name in embedded or not path.is_file() or path.suffix != ".png":
        return None
    embedded.add(name)
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _placeholder(name: str, shown: bool) -> str:
    """What stands for a plot not embedded here: its name, and whether it is shown above."""
    return f"({name}{' — shown above' if shown else ''})"


def _img(folder: Path, name: str, embedded: set) -> str:
    """A PNG of `folder` as an <img> (see `_data_uri`), else its name in a paragraph."""
    shown = name in embedded
    uri = _data_uri(folder, name, embedded)
    if uri is None:
        return f"<p><em>{html.escape(_placeholder(name, shown))}</em></p>"
    return f'<img src="{uri}" alt="{html.escape(name)}" title="{html.escape(name)}">'


class _SelfContained(Treeprocessor):
    """Images embedded from `folder`, headings shifted down `shift` levels with anchors (a claim's
    `(a) …` heading gets `claim-a`), tables in a scrolling <div>."""

    def __init__(self, md: markdown.Markdown, folder: Path, embedded: set, shift: int):
        super().__init__(md)
        self.folder, self.embedded, self.shift = folder, embedded, shift

    def run(self, root: ElementTree.Element) -> None:
        for parent, element in [(p, e) for p in root.iter() for e in p]:
            if element.tag in HEADINGS:
                self._heading(element)
            elif element.tag == "img":
                self._image(parent, element)
            elif element.tag == "table":
                self._scroll(parent, element)

    def _heading(self, element: ElementTree.Element) -> None:
        text = "".join(element.itertext())
        element.tag = f"h{min(6, int(element.tag[1]) + self.shift)}"
        claim = re.match(r"\((\w+)\) ", text)
        element.set("id", f"claim-{claim[1]}" if claim else slug(text).lower())

    def _image(self, parent: ElementTree.Element, element: ElementTree.Element) -> None:
        name = element.get("src", "")
        shown = name in self.embedded
        uri = _data_uri(self.folder, name, self.embedded)
        if uri is not None:
            element.attrib.update(src=uri, alt=name, title=name)
            return
        note = ElementTree.Element("em")
        note.text, note.tail = _placeholder(name, shown), element.tail
        parent[list(parent).index(element)] = note

    @staticmethod
    def _scroll(parent: ElementTree.Element, element: ElementTree.Element) -> None:
        wrapper = ElementTree.Element("div", {"class": "scroll"})
        wrapper.tail, element.tail = element.tail, None
        parent[list(parent).index(element)] = wrapper
        wrapper.append(element)


class _SelfContainedExtension(Extension):
    def __init__(self, folder: Path, embedded: set, shift: int):
        super().__init__()
        self.args = (folder, embedded, shift)

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (markdown's name)
        md.treeprocessors.register(_SelfContained(md, *self.args), "self_contained", 0)


def markdown_html(text: str, folder: Path, embedded: set, shift: int = 0) -> str:
    """Markdown as HTML; images are embedded from `folder` once each (`embedded`: the names so far)."""
    return markdown.markdown(text, extensions=["tables", _SelfContainedExtension(folder, embedded, shift)])


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
