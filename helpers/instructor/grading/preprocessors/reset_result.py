"""First step of the pipeline: forget any result record the student's notebook carries.

A submitted notebook can hold a forged ``cnn_course`` metadata entry; only the record that
:mod:`.write_result` writes at the end of this pipeline counts.
"""
from nbgrader.preprocessors import NbGraderPreprocessor

from .. import result
from . import UsesContext


class ResetResult(UsesContext, NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        result.discard(nb)
        return nb, resources
