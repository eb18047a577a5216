"""Solution and hidden-test regions of a course notebook, found the way nbgrader 0.9.6 finds them.

nbgrader (``ClearSolutions._replace_solution_region``, ``ClearHiddenTests._remove_hidden_test_region``)
splits a cell's source on ``"\\n"``: a line that *contains* the begin delimiter, anywhere in it, opens a
region; a line containing the end delimiter closes it; both delimiter lines go with the region. The
delimiters are nbgrader's settings ``ClearSolutions.begin/end_solution_delimeter`` and
``ClearHiddenTests.begin/end_test_delimeter`` (default ``BEGIN SOLUTION``, ``END SOLUTION``, ``BEGIN
HIDDEN TESTS``, ``END HIDDEN TESTS``), read from the course's traitlets Config by instantiating those
preprocessors. An answer cell without a solution region is solution as a whole (nbgrader replaces all of
it). Where nbgrader raises (a nested begin, a region never closed), this module does not: the region runs
to the next begin or to the end of the cell, so that a malformed cell a student wrote cannot break the
feedback (nbgrader's release rejects such a source notebook anyway).

One rule for secrets, in the site and in the feedback: a line of a region, whitespace-squashed, of at
least ``MIN_LENGTH`` (8) characters; shorter lines ("else:", "pass") hold no solution and would blank
common words. A text shows a secret if, once its ANSI escapes are removed (any CSI sequence,
:data:`ANSI`), it holds the line verbatim or HTML-escaped, any run of whitespace matching any run.
"""
from __future__ import annotations

import html
import re
from typing import Iterable

from nbgrader.utils import is_grade, is_locked, is_solution  # noqa: F401 (is_locked: for the site's labels)

MIN_LENGTH = 8
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
HIDDEN = "[hidden]"


def nbgrader_meta(cell) -> dict:
    """A cell's nbgrader metadata ({} when it has none, or an empty or null one)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_answer_cell(cell) -> bool:
    """A cell the student writes: nbgrader's solution cell (autograded or manually graded answer)."""
    return bool(is_solution(cell))


def is_test_cell(cell) -> bool:
    """An "Autograder tests" cell: a graded code cell that is not an answer."""
    return cell.get("cell_type") == "code" and bool(is_grade(cell)) and not is_solution(cell)


def squash(text: str) -> str:
    return " ".join(text.split())


class Regions:
    """The regions of a course whose nbgrader config is ``config`` (None: nbgrader's defaults)."""

    def __init__(self, config=None):
        from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

        solutions, hidden = ClearSolutions(config=config), ClearHiddenTests(config=config)
        self.begin_solution, self.end_solution = solutions.begin_solution_delimeter, solutions.end_solution_delimeter
        self.begin_hidden, self.end_hidden = hidden.begin_test_delimeter, hidden.end_test_delimeter

    @staticmethod
    def _split(source: str, begin: str, end: str) -> tuple[list[str], list[list[str]]]:
        """(the lines outside every region, the lines of each region), delimiter lines in neither."""
        kept, regions, current = [], [], None
        for line in source.split("\n"):
            if begin in line:
                current = []
                regions.append(current)
            elif end in line:
                current = None
            elif current is not None:
                current.append(line)
            else:
                kept.append(line)
        return kept, regions

    def _flat(self, source: str, begin: str, end: str) -> tuple[str, list[str]]:
        kept, regions = self._split(source, begin, end)
        return "\n".join(kept), [line for r in regions for line in r]

    def split_hidden(self, source: str) -> tuple[str, list[str]]:
        """(the source without its hidden-test regions, the hidden lines)."""
        return self._flat(source, self.begin_hidden, self.end_hidden)

    def split_solution(self, source: str) -> tuple[str, list[str]]:
        """(the source without its solution regions, and no stub; the solution lines)."""
        return self._flat(source, self.begin_solution, self.end_solution)

    def has_hidden(self, cell) -> bool:
        return self.begin_hidden in cell.source

    def has_solution_region(self, cell) -> bool:
        return self.begin_solution in cell.source

    def without_solution_delimiters(self, source: str) -> str:
        """An answer as the reference solution: the source with the solution delimiter lines removed."""
        return "\n".join(line for line in source.split("\n")
                         if self.begin_solution not in line and self.end_solution not in line)

    def hidden_regions(self, nb) -> list[list[str]]:
        """The lines of every hidden-test region of the notebook, region by region."""
        return [r for cell in nb.cells for r in self._split(cell.source, self.begin_hidden, self.end_hidden)[1]]

    def solution_regions(self, nb) -> list[list[str]]:
        """What nbgrader's ClearSolutions removes: every solution region, and every answer cell
        without a region as a whole."""
        out = []
        for cell in nb.cells:
            if is_answer_cell(cell) and not self.has_solution_region(cell):
                out.append(cell.source.split("\n"))
            else:
                out += self._split(cell.source, self.begin_solution, self.end_solution)[1]
        return out

    def public_source(self, nb) -> str:
        """Every line of the notebook's sources that the student edition shows (stubs apart)."""
        kept = []
        for cell in nb.cells:
            if not (is_answer_cell(cell) and not self.has_solution_region(cell)):
                kept.append(self.split_hidden(self.split_solution(cell.source)[0])[0])
        return "\n".join(kept)

    def secret_lines(self, nb, min_length: int = MIN_LENGTH) -> list[str]:
        """The squashed lines of solutions and hidden tests, at least ``min_length`` long, that the
        student edition does not show anyway (``return Z`` after a solution region is no secret)."""
        public = "\n".join(squash(line) for line in self.public_source(nb).split("\n"))
        out: dict[str, None] = {}
        for region in self.solution_regions(nb) + self.hidden_regions(nb):
            for line in map(squash, region):
                if len(line) >= min_length and line not in public:
                    out[line] = None
        return list(out)


def _pattern(lines: Iterable[str], min_length: int) -> re.Pattern | None:
    """One regex for the secrets among ``lines``, in every written form, the longest first."""
    forms = {v: None for s in map(squash, lines) if len(s) >= min_length
             for v in (s, html.escape(s), html.escape(s, quote=False), s.replace('"', "&#34;"))}
    alternatives = [r"\s+".join(map(re.escape, v.split(" "))) for v in sorted(forms, key=len, reverse=True)]
    return re.compile("|".join(alternatives)) if alternatives else None


def scrub(text: str, lines: Iterable[str], min_length: int = MIN_LENGTH, replacement: str = HIDDEN) -> str:
    """``text`` without ANSI escapes, every secret among ``lines`` replaced by ``replacement``."""
    text, pattern = ANSI.sub("", text), _pattern(lines, min_length)
    return pattern.sub(replacement, text) if pattern else text


def leaks(text: str, lines: Iterable[str], min_length: int = MIN_LENGTH) -> list[str]:
    """The secrets among ``lines`` (squashed) that ``text`` shows."""
    text, lines = ANSI.sub("", text), list(dict.fromkeys(map(squash, lines)))
    everything = _pattern(lines, min_length)
    if everything is None or not everything.search(text):
        return []
    return [s for s in lines if len(s) >= min_length and _pattern([s], min_length).search(text)]
