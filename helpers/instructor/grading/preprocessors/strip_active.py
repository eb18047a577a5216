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
- markdown and raw cells are cleaned the same way, and a ``javascript:`` / ``vbscript:`` /
  ``data:text/html`` URL in markdown link syntax is disabled;
- attachments other than PNG/JPEG/GIF, and the notebook's widget state, are dropped.

Streams and errors stay: every renderer shows them as text. Locked cells that nbgrader restored
from the assignment are the instructor's and stay as they are.
"""
from __future__ import annotations

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
# a scheme that runs code, also when spelt with spaces, control characters or entities between letters
_GAP = r"(?:\s|&#?\w*;?|\\)*"
BAD_SCHEME = re.compile(_GAP.join("javascript") + _GAP + ":|" + _GAP.join("vbscript") + _GAP + ":|"
                        + _GAP.join("data") + _GAP + ":" + _GAP + "text/html", re.I)


TAG_START = re.compile(r"<[A-Za-z!/?]")      # where an HTML parser would see markup
ACTIVE = re.compile(r"<\s*/?\s*(?:script|iframe|object|embed|style|svg|math|form|meta|link|base)\b|\son\w+\s*=",
                    re.I)


SCRIPT_BLOCK = re.compile(r"<\s*(script|style)\b[^>]*>.*?<\s*/\s*\1\s*>", re.I | re.S)


def disable_schemes(text: str) -> str:
    return BAD_SCHEME.sub("blocked:", text)


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
        text = "".join(html_str) if isinstance(html_str, list) else str(html_str)
        if TAG_START.search(text):   # text without markup stays as it is (bleach would escape "a > b")
            text = super().sanitize_html_tags(SCRIPT_BLOCK.sub("", text))
        return disable_schemes(text)

    def preprocess_cell(self, cell, resources, index):
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        if meta.get("locked") and not meta.get("solution") and cell.cell_type != "code":
            return cell, resources   # restored from the assignment by nbgrader: the instructor's own text
        before = repr(cell.get("source")) + repr(cell.get("outputs", "")) + repr(cell.get("attachments", ""))
        kinds = {k for o in cell.get("outputs", []) for k in (o.get("data") or {})}
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
        dropped = kinds - {k for o in cell.get("outputs", []) for k in (o.get("data") or {})}
        self._changed += before != after and bool(dropped or ACTIVE.search(before) or BAD_SCHEME.search(before))
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
