"""Code that runs inside the sandbox, next to student code: untrusted once student code has run.

``child.py`` is started by file path (``python -I .../inside/child.py FD``) and imports only the
standard library, NumPy and ``codec.py`` (loaded by path, so that the ``helpers`` package is never
imported inside). The trusted side imports ``codec.py`` from here as
``helpers.instructor.inside.codec``: one codec for both sides.
"""
