"""Submissions are data: found, checked and staged before nbgrader sees them.

- :mod:`.outcome`: the ``Task`` to grade and the ``Outcome`` of one submission;
- :mod:`.discover`: which folders under ``submitted/`` are submissions; names that are not safe ids
  are rejected by name and never reach nbgrader;
- :mod:`.stage`: a submission may hold only regular files and folders within a size limit; root
  copies it (never following a link) into a root-owned staging folder, the one nbgrader grades,
  and neutralizes tampered nbgrader metadata there;
- :mod:`.state`: the record of what was graded (timestamp and content hash), so that a
  resubmission is regraded and an unchanged one skipped;
- :mod:`.preprocessors.strip_active`: no student script reaches an autograded notebook;
- :mod:`.csvsafe`: CSV fields that a spreadsheet never reads as a formula.
"""
