"""HTML feedback that keeps hidden tests hidden.

nbgrader's ``generate_feedback`` renders the autograded notebook, hidden tests included
(jupyter/nbgrader #917, #1363); its ``ClearHiddenTests`` removes their source but a traceback
still shows the lines. ``HideHiddenTests`` runs in the feedback pipeline after the grades are
read, and for every cell that held a hidden test region it:

- keeps only the visible part of the source (the docstring) and says a hidden test ran there;
- replaces the cell's outputs by one line: passed, or failed with the error's type and message,
  never a traceback;
- removes from that message any line of the hidden test's source;
- renames the cell's grade id (the feedback page shows it in its table of contents) to
  ``hidden-test-N``.

Scores per test stay, and so do the student's own errors in visible cells.
"""
from __future__ import annotations

import re

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def split_hidden(source: str) -> tuple[str, list[str]]:
    """Return (the source without hidden regions, the hidden lines)."""
    visible, hidden, inside = [], [], False
    for line in source.split("\n"):
        if BEGIN in line:
            inside = True
        elif END in line:
            inside = False
        elif inside:
            hidden.append(line)
        else:
            visible.append(line)
    return "\n".join(visible), hidden


def scrub(text: str, hidden_lines: list[str]) -> str:
    text = ANSI.sub("", text)
    for line in sorted({ln.strip() for ln in hidden_lines if len(ln.strip()) >= 4}, key=len, reverse=True):
        text = text.replace(line, "[hidden]")
    return text


class HideHiddenTests(NbGraderPreprocessor):
    """Strip hidden tests, their tracebacks and their names from a feedback notebook."""

    def preprocess(self, nb, resources):
        self._count = 0
        all_hidden = []
        for cell in nb.cells:
            if cell.cell_type == "code" and BEGIN in cell.source:
                all_hidden += split_hidden(cell.source)[1]
        self._hidden = all_hidden
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if BEGIN not in cell.source:
            # a visible cell: its outputs may still quote a hidden line (say, a student printed one)
            for out in cell.get("outputs", []):
                if out.output_type == "stream":
                    out.text = scrub(out.text, self._hidden)
                elif out.output_type == "error":
                    out.evalue = scrub(out.evalue, self._hidden)
                    out.traceback = [scrub(t, self._hidden) for t in out.traceback]
            return cell, resources
        self._count += 1
        visible, _ = split_hidden(cell.source)
        cell.source = (visible.rstrip() + "\n" if visible.strip() else "") + \
            "# A hidden test ran here; its code is not shown."
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if errors:
            e = errors[0]
            text = f"Hidden test failed: {scrub(e.ename, self._hidden)}: {scrub(e.evalue, self._hidden)}\n"
        else:
            text = "Hidden test passed.\n"
        cell.outputs = [new_output("stream", name="stdout", text=text)]
        meta = cell.metadata.get("nbgrader", {})
        if "grade_id" in meta:
            meta["grade_id"] = f"hidden-test-{self._count}"
        return cell, resources


def hidden_test_texts(source_nb) -> list[str]:
    """Every non-trivial hidden line of a source notebook, and the grade ids of hidden cells."""
    texts = []
    for cell in source_nb.cells:
        if cell.cell_type == "code" and BEGIN in cell.source:
            texts += [ln.strip() for ln in split_hidden(cell.source)[1] if len(ln.strip()) >= 8]
            texts.append(cell.metadata["nbgrader"]["grade_id"])
    return texts


def generate_feedback(api, assignment: str, students: list[str]) -> list[dict]:
    """nbgrader's feedback for each student, with ``HideHiddenTests`` in the pipeline."""
    results = []
    for s in students:
        results.append({"student": s, **api.generate_feedback(assignment, s, force=True)})
    return results


def feedback_overrides() -> dict:
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    return {"GenerateFeedback": {"preprocessors": [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]}}
