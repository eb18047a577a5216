"""The preprocessors this tool adds to nbgrader's ``Autograde`` pipeline, one per module.

Each reads and writes the submission's :class:`~..context.SubmissionContext`, set for every
submission through the shared ``UsesContext.context`` setting (see :mod:`..pipeline`).
"""
from traitlets import Any
from traitlets.config import Configurable


class UsesContext(Configurable):
    """Mixin: the ``context`` setting (a SubmissionContext) that the worker sets per submission."""

    context = Any(None, help="The SubmissionContext of the submission being graded").tag(config=True)

    def ctx(self):
        if self.context is None:
            raise RuntimeError(f"{type(self).__name__} runs only inside cnn-course autograde (no context set)")
        return self.context
