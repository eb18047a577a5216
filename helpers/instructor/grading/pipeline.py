"""nbgrader's ``Autograde`` pipeline, as this tool runs it.

Sanitize (before anything runs), nbgrader's steps with one of ours::

    ResetResult, ClearOutput, DeduplicateIds, OverwriteKernelspec, RestoreLostMetadata,
    OverwriteCells, CheckCellMetadata

Autograde::

    CheckOutOfKernel      score every graded function outside the kernel (preprocessors/out_of_kernel.py)
    SandboxedExecute      run the notebook in the sandbox (preprocessors/execute.py)
    ApplyVerdicts         the out-of-kernel verdict wins over a kernel pass (preprocessors/apply_verdicts.py)
    IgnorePattern, ClearMetadataPreprocessor, LimitOutput   nbgrader's own
    StripActive           no student script reaches an instructor (preprocessors/strip_active.py)
    SaveAutoGrades, AssignLatePenalties, CheckCellMetadata  nbgrader's own
    WriteResult           the result record into the notebook (preprocessors/write_result.py)

Every setting comes from :class:`~..options.GradingOptions`; :func:`set_context` hands each
submission's :class:`~.context.SubmissionContext` to the preprocessors.
"""
from __future__ import annotations

from ..options import GradingOptions


def configure(config, options: GradingOptions) -> None:
    """Put this tool's pipeline and settings into ``config`` (a traitlets Config)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds,
                                        IgnorePattern, LimitOutput, OverwriteCells, OverwriteKernelspec,
                                        SaveAutoGrades)

    from .preprocessors.apply_verdicts import ApplyVerdicts
    from .preprocessors.execute import SandboxedExecute
    from .preprocessors.out_of_kernel import CheckOutOfKernel
    from .preprocessors.reset_result import ResetResult
    from .preprocessors.restore_metadata import RestoreLostMetadata
    from .preprocessors.strip_active import StripActive
    from .preprocessors.write_result import WriteResult

    config.Autograde.sanitize_preprocessors = [ResetResult, ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                               RestoreLostMetadata, OverwriteCells, CheckCellMetadata]
    config.Autograde.autograde_preprocessors = [CheckOutOfKernel, SandboxedExecute, ApplyVerdicts, IgnorePattern,
                                                ClearMetadataPreprocessor, LimitOutput, StripActive,
                                                SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
                                                WriteResult]
    config.OverwriteCells.add_missing_cells = True
    config.Execute.timeout = int(options.cell_timeout)
    config.Execute.interrupt_on_timeout = True
    config.LimitOutput.max_lines = int(options.max_output_lines)
    config.LimitOutput.max_traceback = 50


def set_context(config, context) -> None:
    """The submission being graded, for every preprocessor of the pipeline (``UsesContext``)."""
    config.UsesContext.context = context
