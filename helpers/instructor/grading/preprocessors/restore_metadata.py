"""Rebuild a notebook whose answer cells lost their nbgrader metadata (pasted into a fresh notebook).

nbgrader alone fails such a notebook (``KeyError`` in ``add_missing_cells``). This step, before
nbgrader's ``OverwriteCells``, rebuilds it from the gradebook's copy of the assignment: each
answer cell gets the student's cell that defines the same function, locked and test cells come
from the gradebook, and the student's other code goes before the first answer cell.
"""
import copy
import uuid

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell
from nbgrader.preprocessors import NbGraderPreprocessor

from ... import outofkernel
from ...regions import nbgrader_meta
from . import UsesContext


class RestoreLostMetadata(UsesContext, NbGraderPreprocessor):
    """Rebuild a notebook whose answer cells lost their nbgrader metadata, from the gradebook's cells."""

    def preprocess(self, nb, resources):
        from nbgrader.api import Gradebook
        from nbgrader.preprocessors import OverwriteCells

        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            try:
                source_nb = gb.find_notebook(info["notebook"], info["assignment"])
            except Exception:
                return nb, resources
            source_cells = list(source_nb.source_cells)
            solution_ids = {c.name for c in source_nb.solution_cells}
            grade_cells = {c.name: c for c in source_nb.grade_cells}
            present = {nbgrader_meta(c).get("grade_id") for c in nb.cells if nbgrader_meta(c)}
            missing = [sid for sid in (c.name for c in source_cells) if sid in solution_ids and sid not in present]
            if not missing:
                return nb, resources
            # the student's code cells that carry no nbgrader metadata, with the functions they define
            free = [c for c in nb.cells if c.cell_type == "code" and not nbgrader_meta(c) and c.source.strip()]
            defs = [set(outofkernel.defined_names(c.source)) for c in free]
            used: set = set()
            builder = OverwriteCells(parent=self)
            cells = []
            matched = []
            by_id = {nbgrader_meta(c).get("grade_id"): c for c in nb.cells if nbgrader_meta(c).get("grade_id")}
            for sc in source_cells:
                if sc.name in by_id:
                    cells.append(by_id[sc.name])
                    continue
                if sc.name in solution_ids:
                    wanted = set(outofkernel.defined_names(sc.source))
                    pick = next((i for i, d in enumerate(defs) if i not in used and d & wanted), None)
                    if pick is None:
                        src = sc.source
                    else:
                        used.add(pick)
                        src = free[pick].source
                        matched.append(sc.name)
                    cell = new_code_cell(src)
                    cell.metadata["nbgrader"] = NotebookNode({"grade": sc.name in grade_cells, "solution": True,
                                                             "locked": False, "grade_id": sc.name,
                                                             "schema_version": 3})
                    if sc.name in grade_cells:
                        cell.metadata["nbgrader"]["points"] = grade_cells[sc.name].max_score
                    cells.append(cell)
                elif sc.name in grade_cells:
                    restored = nbformat.from_dict(builder.missing_cell_transform(sc, grade_cells[sc.name].max_score))
                    restored.setdefault("id", uuid.uuid4().hex[:8])
                    cells.append(restored)
                else:  # a locked cell (setup): restored from the gradebook
                    cell = new_code_cell(sc.source) if sc.cell_type == "code" else None
                    if cell is None:
                        continue
                    cell.metadata["nbgrader"] = NotebookNode({"grade": False, "solution": False, "locked": True,
                                                             "grade_id": sc.name, "schema_version": 3})
                    cells.append(cell)
            # the student's other code (helpers they wrote) goes before the first answer cell
            extra = [copy.deepcopy(free[i]) for i in range(len(free)) if i not in used]
            first_answer = next((i for i, c in enumerate(cells) if nbgrader_meta(c).get("solution")), len(cells))
            cells[first_answer:first_answer] = extra
            nb.cells = cells
            self.ctx().result.note(f"nbgrader metadata was missing for answer cell(s) {', '.join(missing)}: notebook rebuilt from "
                 f"the assignment; matched by function name: {', '.join(matched) or 'none'}")
        return nb, resources
