"""The out-of-kernel verdict wins over a test cell that passed in the kernel.

Runs after execution and before nbgrader's ``SaveAutoGrades``. A test cell that passed in the
kernel while its function failed on fresh inputs outside the kernel gets an error output saying
why, so nbgrader itself scores it 0; the result record lists it as a flag (``cnn-course report``
shows the flags). Nothing is written into the gradebook by hand, so a regrade that no longer
fails simply scores the cell again. The check can only lower a score, never raise one. And no test
cell gets partial credit from an ``execute_result`` that student code made (:func:`no_partial_credit`).
"""
from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import determine_grade

from ...regions import is_test_cell
from . import UsesContext

ENAME = "OutOfKernelCheckFailed"


def no_partial_credit(cell) -> None:
    """nbgrader takes a test cell's score from its first ``execute_result`` (partial credit), and
    student code can make one (a redefined check that returns a value, a pre-run hook). The course's
    tests never return a value, so a test cell's results become plain display outputs: the score
    comes from errors alone."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "execute_result":
            out["output_type"] = "display_data"
            out.pop("execution_count", None)


class ApplyVerdicts(UsesContext, NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        ctx = self.ctx()
        verdicts = ctx.result.verdicts
        for cell in nb.cells:
            if not is_test_cell(cell):
                continue
            gid = cell.metadata["nbgrader"]["grade_id"]
            no_partial_credit(cell)
            v = verdicts.get(gid)
            if not v or v["status"] in ("ok", "infra"):
                continue
            score, _ = determine_grade(cell)
            if not score:
                continue   # failed (or was not run) in the kernel too: nothing to override
            from ...outofkernel import Verdict

            reason = Verdict(**v).reason()
            cell.outputs = [new_output(
                "error", ename=ENAME, evalue=f"this test passed in the notebook, but {reason} when the grader ran "
                                             f"your code again outside the notebook; scored 0",
                traceback=[f"{ENAME}: {reason}"])] + list(cell.get("outputs", []))   # first: it decides
            ctx.result.flag(gid, v["function"], reason, float(score))
        return nb, resources
