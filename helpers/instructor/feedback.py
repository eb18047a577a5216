"""HTML feedback that keeps hidden tests hidden.

nbgrader's ``generate_feedback`` renders the autograded notebook, hidden tests included
(jupyter/nbgrader #917, #1363); its ``ClearHiddenTests`` removes their source but a traceback
still shows the lines. ``HideHiddenTests`` runs in the feedback pipeline after the grades are
read, and for every cell that held a hidden test region it:

- keeps only the visible part of the source (the docstring) and says a hidden test ran there;
- replaces the cell's outputs by one line: passed, or failed with the error's type and message,
  never a traceback;
- removes from that message any line of the hidden test's source (the rule of
  :mod:`helpers.instructor.regions`: lines of at least 8 characters, whitespace-tolerant, verbatim or
  HTML-escaped; regions found with the course's ``ClearHiddenTests`` delimiters);
- removes hidden lines from the outputs of visible cells too: streams, errors (tracebacks) and the
  text of display outputs (a student's function can read the hidden test that calls it from
  IPython's input history and show it later); a display output that had to be scrubbed keeps
  only its plain text;
- renames the cell's grade id (the feedback page shows it in its table of contents) to
  ``hidden-test-N``.

Scores per test stay, and so do the student's own errors in visible cells.
"""
from __future__ import annotations

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor

from .regions import HIDDEN, MIN_LENGTH, Regions, scrub


def scrub_bundle(data: dict, hidden_lines: list[str]) -> dict:
    """Scrub every text representation of a display output (verbatim or HTML-escaped lines, see
    :mod:`helpers.instructor.regions`); drop the binary ones when the text representations had to be
    scrubbed (an image could show the same text)."""
    out, changed = {}, False
    for mime, value in data.items():
        if mime.startswith("text/") or mime.endswith("json") or mime.endswith("+xml") or mime == "image/svg+xml":
            text = value if isinstance(value, str) else "".join(value) if isinstance(value, list) else str(value)
            clean = scrub(text, hidden_lines)
            changed |= clean != text
            out[mime] = clean
        else:
            out[mime] = value
    if changed:
        out = {k: v for k, v in out.items() if k.startswith("text/plain")} or {"text/plain": HIDDEN}
    return out


class HideHiddenTests(NbGraderPreprocessor):
    """Strip hidden tests, their tracebacks and their names from a feedback notebook."""

    def preprocess(self, nb, resources):
        self._count = 0
        self._regions = Regions(self.config)  # the course's delimiters (ClearHiddenTests.begin_test_delimeter...)
        hidden_cells = [cell for cell in nb.cells if cell.cell_type == "code" and self._regions.has_hidden(cell)]
        self._hidden = [line for cell in hidden_cells for line in self._regions.split_hidden(cell.source)[1]]
        # the grade ids of hidden test cells name the hidden cases too (and nbgrader writes them into
        # the source of a cell it restored: "This cell (id:test_..._hidden) was missing")
        self._hidden_ids = [cell.metadata.get("nbgrader", {}).get("grade_id", "") for cell in hidden_cells]
        self._hidden_ids = [g for g in self._hidden_ids if g]
        return super().preprocess(nb, resources)

    def _scrub(self, text: str) -> str:
        text = scrub(text, self._hidden)
        for gid in sorted(self._hidden_ids, key=len, reverse=True):
            text = text.replace(gid, "hidden-test")
        return text

    def preprocess_cell(self, cell, resources, index):
        if any(gid in str(cell.get("id", "")) for gid in self._hidden_ids):
            cell["id"] = f"cell-{index}"   # nbconvert writes a cell's id into the page (id="cell-id=...")
        if cell.cell_type != "code":
            return cell, resources
        if not self._regions.has_hidden(cell):
            # a visible cell: its outputs may still quote a hidden line (say, a student's function saw the
            # hidden test that called it, through IPython's input history, and printed or displayed it)
            for out in cell.get("outputs", []):
                if out.output_type == "stream":
                    out.text = self._scrub(out.text)
                elif out.output_type == "error":
                    out.ename = self._scrub(out.ename)
                    out.evalue = self._scrub(out.evalue)
                    out.traceback = [self._scrub(t) for t in out.traceback]
                elif out.output_type in ("execute_result", "display_data"):
                    out["data"] = scrub_bundle(out.get("data", {}), self._hidden + self._hidden_ids)
            return cell, resources
        self._count += 1
        visible, _ = self._regions.split_hidden(cell.source)
        visible = self._scrub(visible)
        cell.source = (visible.rstrip() + "\n" if visible.strip() else "") + \
            "# A hidden test ran here; its code is not shown."
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if errors:
            e = errors[0]
            text = f"Hidden test failed: {self._scrub(e.ename)}: {self._scrub(e.evalue)}\n"
        else:
            text = "Hidden test passed.\n"
        cell.outputs = [new_output("stream", name="stdout", text=text)]
        meta = cell.metadata.get("nbgrader", {})
        if "grade_id" in meta:
            meta["grade_id"] = f"hidden-test-{self._count}"
        return cell, resources


def hidden_test_texts(source_nb, config=None) -> list[str]:
    """Every hidden line of a source notebook that feedback must not show (stripped, at least
    ``MIN_LENGTH`` characters once squashed), and the grade ids of hidden cells."""
    regions, texts = Regions(config), []
    for cell in source_nb.cells:
        if cell.cell_type == "code" and regions.has_hidden(cell):
            texts += [ln.strip() for ln in regions.split_hidden(cell.source)[1] if len(" ".join(ln.split())) >= MIN_LENGTH]
            texts.append(cell.metadata["nbgrader"]["grade_id"])
    return texts


def feedback_overrides() -> dict:
    """nbgrader's feedback pipeline with ``HideHiddenTests`` and ``StripActive`` (no student script, also
    for notebooks autograded before it was in the autograde pipeline), rendered by nbconvert with its
    HTML sanitizer on (``HTMLExporter.sanitize_html``: bleach over markdown and HTML outputs)."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    from .grading.preprocessors.strip_active import StripActive

    return {"GenerateFeedback": {"preprocessors": [GetGrades, StripActive, HideHiddenTests, CSSHTMLHeaderPreprocessor]},
            "HTMLExporter": {"sanitize_html": True}}
