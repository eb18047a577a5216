"""``StripActive``: an autograded notebook carries no script from a student.

The autograded notebook is what nbgrader's formgrader renders in the instructor's logged-in
browser, and what the feedback page is made from. This preprocessor runs in the ``Autograde``
pipeline after execution (before ``SaveAutoGrades``; :func:`configure_strip_active`) and in the
feedback pipeline. It is nbconvert's own ``SanitizeHTML`` (bleach, with an allowlist of output
mimetypes) with these settings and additions:

- outputs keep only ``text/plain``, ``text/latex``, ``application/json``, PNG/JPEG/GIF images, and
  ``text/html`` / ``text/markdown`` cleaned by bleach; everything else goes: ``application/javascript``,
  ``text/javascript``, widget views, ``image/svg+xml`` (SVG can hold script), any ``application/vnd.*``;
- HTML keeps a small set of layout tags (tables, headings, lists, images) and attributes, never an
  event handler, a ``<script>``, ``<style>``, ``<iframe>`` or a ``javascript:`` URL; unsafe tags are
  removed (``strip``), not shown escaped;
- markdown cells, raw cells and markdown outputs are judged on the HTML a renderer makes of them
  (entities decoded: ``&#106;avascript:`` is ``javascript:``); if a browser could run anything in
  it, the rendered HTML cleaned by bleach (URL schemes http, https and mailto only) replaces them;
  every check runs in linear time on any input;
- attachments other than PNG/JPEG/GIF, and the notebook's widget state, are dropped.

Streams and errors stay: every renderer shows them as text. Locked cells that nbgrader restored
from the assignment are the instructor's and stay as they are.
"""
from __future__ import annotations

import html
import re

from nbconvert.preprocessors.sanitize import SanitizeHTML
from traitlets import Bool, List, Unicode

from . import UsesContext

TAGS = ["a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em", "h1", "h2",
        "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "samp", "small", "span",
        "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var"]
ATTRIBUTES = {"*": ["class", "title", "align"], "a": ["href", "title"], "img": ["src", "alt", "width", "height"],
              "td": ["colspan", "rowspan"], "th": ["colspan", "rowspan", "scope"]}
SAFE_OUTPUT_KEYS = {"metadata", "text/plain", "text/latex", "application/json", "image/png", "image/jpeg",
                    "image/gif"}
SAFE_ATTACHMENTS = {"image/png", "image/jpeg", "image/gif"}
ACTIVE = re.compile(r"<\s*/?\s*(?:script|iframe|object|embed|style|svg|math|form|meta|link|base)\b|\son\w+\s*=",
                    re.I)
SCRIPT_BLOCK = re.compile(r"<\s*(script|style)\b[^>]*>.*?<\s*/\s*\1\s*>", re.I | re.S)
# attribute values that hold a URL (each alternative is a plain class: linear time on any input)
URL_ATTR = re.compile(r"\b(?:href|src|action|formaction|poster|background|data|xlink:href)\s*=\s*"
                      r"(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+))", re.I)
SAFE_SCHEMES = {"http", "https", "mailto"}
# what a browser ignores inside a scheme: whitespace, control characters, backslashes, entities
_NOISE = re.compile(r"[\x00-\x20\\]|&#?\w{0,10};?")


def _bad_url(value: str) -> bool:
    """True for a URL whose scheme can run code or is not http(s)/mailto (entities decoded first)."""
    plain = _NOISE.sub("", html.unescape(value)).lower()
    scheme, colon, _ = plain.partition(":")
    return bool(colon) and scheme.isascii() and all(c.isalnum() or c in "+.-" for c in scheme) \
        and scheme not in SAFE_SCHEMES


def risky(html_text: str) -> bool:
    """Could a browser run anything in this HTML? (script-capable tags, handlers, bad URLs)"""
    return bool(ACTIVE.search(html_text)) or any(_bad_url(next(g for g in m.groups() if g is not None))
                                                 for m in URL_ATTR.finditer(html_text))


def render_markdown(text: str) -> str:
    """The HTML a notebook renderer makes of ``text`` (markdown; inline HTML passes through)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    try:
        return markdown2html_mistune(text)
    except Exception:        # a renderer failure: treat the raw text as HTML
        return text


def disable_schemes(text: str) -> str:
    """LaTeX and other text: a ``javascript:``-like link anywhere replaces the whole text (linear time)."""
    plain = _NOISE.sub("", text).lower()
    if any(bad in plain for bad in ("javascript:", "vbscript:", "data:text/html")):
        return "[removed by the grader: an active link]"
    return text


class StripActive(UsesContext, SanitizeHTML):
    """nbconvert's ``SanitizeHTML`` made strict for student notebooks (see the module docstring)."""

    enabled = Bool(True, help="nbconvert runs a preprocessor only when enabled").tag(config=True)
    tags = List(Unicode(), default_value=TAGS).tag(config=True)
    note_prefix = Unicode("active content removed").tag(config=True)

    def __init__(self, **kw):
        super().__init__(**kw)
        self.attributes = dict(ATTRIBUTES)
        self.strip = True
        self.safe_output_keys = set(SAFE_OUTPUT_KEYS)
        self.sanitized_output_types = {"text/html", "text/markdown"}

    def preprocess(self, nb, resources):
        self._changed = 0
        if nb.metadata.pop("widgets", None) is not None:
            self._changed += 1
        nb, resources = super().preprocess(nb, resources)
        if self._changed and self.context is not None:   # autograde (feedback has no context)
            self.context.result.note(f"{self.note_prefix} from {self._changed} cell(s) (script, event handlers, "
                                     f"javascript: URLs)")
        return nb, resources

    def sanitize_html_tags(self, html_str):
        """Markdown, or HTML: judged on what a renderer would make of it. Text a browser would not
        run stays as the student wrote it; otherwise the rendered HTML, cleaned by bleach (allowlisted
        tags, attributes and URL schemes), replaces it."""
        text = "".join(html_str) if isinstance(html_str, list) else str(html_str)
        rendered = render_markdown(text)
        if not risky(text) and not risky(rendered):
            return text
        return super().sanitize_html_tags(SCRIPT_BLOCK.sub("", rendered))

    def preprocess_cell(self, cell, resources, index):
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        if meta.get("locked") and not meta.get("solution") and cell.cell_type != "code":
            return cell, resources   # restored from the assignment by nbgrader: the instructor's own text
        before = repr(cell.get("source")) + repr(cell.get("outputs", "")) + repr(cell.get("attachments", ""))
        attachments = cell.get("attachments")
        if attachments:
            for name in list(attachments):
                bundle = attachments[name]
                for mime in [m for m in bundle if m not in SAFE_ATTACHMENTS]:
                    del bundle[mime]
                if not bundle:
                    del attachments[name]
        if cell.cell_type == "code":
            cell.outputs = self.sanitize_code_outputs(cell.get("outputs", []))
            for out in cell.outputs:
                data = out.get("data") or {}
                for key in ("text/latex",):
                    if isinstance(data.get(key), (str, list)):
                        data[key] = disable_schemes("".join(data[key]) if isinstance(data[key], list) else data[key])
        else:
            cell.source = self.sanitize_html_tags(cell.source)
        after = repr(cell.get("source")) + repr(cell.get("outputs", "")) + repr(cell.get("attachments", ""))
        self._changed += before != after
        return cell, resources


def configure_strip_active(config) -> None:
    """Insert ``StripActive`` into ``config.Autograde.autograde_preprocessors`` right before
    ``SaveAutoGrades`` (after execution and ``LimitOutput``), unless it is there already."""
    from nbgrader.preprocessors import SaveAutoGrades

    pipeline = list(config.Autograde.autograde_preprocessors)
    if StripActive in pipeline:
        return
    at = pipeline.index(SaveAutoGrades) if SaveAutoGrades in pipeline else len(pipeline)
    pipeline.insert(at, StripActive)
    config.Autograde.autograde_preprocessors = pipeline
