"""Autograding on a Dask cluster: every submission is one task; no shared filesystem.

- :mod:`.security`: which scheduler addresses are allowed, TLS settings from the flags, and
  ``cnn-course cluster certs`` (a CA and the scheduler's, workers' and client's certificates);
- :mod:`.bundle`: the course bundle (source notebooks, ``nbgrader_config.py``) as deterministic
  bytes named by their SHA-256, sent once per worker by a worker plugin; a staged submission as
  bytes, and back into a staged folder on the worker;
- :mod:`.remote`: the task that runs on a worker: a private course directory built from the
  bundle, with a local SQLite gradebook, graded by the unchanged :class:`~..grading.worker.Worker`
  in the sandbox; it returns only data (the outcome and the autograded notebook's bytes);
- :mod:`.preload`: ``dask worker --preload helpers.instructor.cluster.preload``: sandbox users,
  the probe, one sandbox slot per worker process;
- :mod:`.receive`: the trusted host checks what came back (a notebook of the right assignment,
  within a size cap) and writes ``autograded/`` and the central gradebook from it, with nbgrader's
  own ``OverwriteCells``, ``SaveAutoGrades`` and ``AssignLatePenalties``;
- :mod:`.host`: submit every task, show progress, write each finished submission once, report
  a submission that killed every worker it ran on;
- :mod:`.commands`: ``cnn-course worker`` and ``cnn-course cluster scheduler|certs``.

Workers hold no database credentials: the host alone writes the central (PostgreSQL) gradebook.
"""
