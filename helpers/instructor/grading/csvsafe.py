"""CSV that a spreadsheet never reads as a formula (OWASP "CSV injection").

A field that starts with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line feed is
written with a leading single quote, unless it is a plain number (``-1.5`` stays a number).
:func:`writer` wraps ``csv.writer``; :func:`rewrite` makes an existing CSV file safe (nbgrader's own
export), field by field.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")


def safe_field(value):
    """The field as it may be written: numbers as they are, text never read as a formula."""
    if value is None or isinstance(value, (int, float)):
        return value
    text = str(value)
    if text.startswith(TRIGGERS) and not NUMBER.match(text):
        return "'" + text
    return text


class _SafeWriter:
    def __init__(self, fh, **kw):
        self._w = csv.writer(fh, **kw)

    def writerow(self, row):
        return self._w.writerow([safe_field(v) for v in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


def writer(fh, **kw) -> _SafeWriter:
    return _SafeWriter(fh, **kw)


def rewrite(path: Path | str) -> Path:
    """Make every field of the CSV file at ``path`` safe (in place)."""
    path = Path(path)
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer(fh).writerows(rows)
    os.replace(tmp, path)
    return path
