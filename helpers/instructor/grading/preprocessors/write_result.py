"""Last step of the pipeline: the submission's result record goes into the autograded notebook."""
from nbgrader.preprocessors import NbGraderPreprocessor

from .. import result
from . import UsesContext


class WriteResult(UsesContext, NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        result.write(nb, self.ctx().result)
        return nb, resources
