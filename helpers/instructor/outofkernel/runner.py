"""The grader's driver: runs the plan in the sandbox, one command at a time, and judges each result.

Before anything runs, the grader draws the fresh inputs and computes the reference outputs (a
failure there is ``infra``: no student code is involved). Then a child starts in the sandbox and
must answer a hello carrying a random nonce before it is sent any cell: no valid hello from the
first child is ``infra`` (the sandbox did not start). After that, every step is a command the
grader sent and a deadline it keeps: a cell, or one call of a graded function on one case. The
grader always knows which step is current, because it sent it, and nothing the child writes can
change that: a reply that is not the expected one is a wrong answer, no reply in time is a
timeout, a closed pipe or a dead process is a crash. After a failed step the child is killed and
a new one runs the plan again from the start, without the cells that failed and the cases already
decided. A case is ``ok`` only when its result passes the in-kernel checks against the reference.
"""
from __future__ import annotations

import json
import secrets
import time

import numpy as np

from ..inside.codec import encode
from .judge import judge
from .ledger import Ledger
from .link import Link
from .plan import Plan

CELLS = ("setup", "answer", "free")


def _parse(line):
    """A reply line as a dict, the link's state (``"timeout"``, ``"eof"``, ``"oversized"``) or None."""
    if isinstance(line, str):
        return line
    try:
        obj = json.loads(line)
    except Exception:     # not JSON, too deep (RecursionError), bad UTF-8: not a reply
        return None
    return obj if type(obj) is dict else None


def _run(check: Ledger, box, cell_timeout: float, startup_timeout: float, deadline: float, first: bool,
         call_timeouts: dict | None = None) -> bool:
    """One child from the start of the plan; False if it did not start (then everything left is decided)."""
    def no_start(why: str) -> bool:
        check.give_up("infra" if first else "crashed",
                      why if first else f"the checking process did not start again after student code had run ({why})")
        return False

    try:
        link = Link(box)
    except Exception as exc:
        return no_start(f"the sandbox did not start: {type(exc).__name__}: {str(exc)[:200]}")
    try:
        nonce = secrets.token_hex(16)
        link.send({"op": "hello", "nonce": nonce})
        reply = link.receive(min(deadline, time.monotonic() + startup_timeout))
        if _parse(reply) != {"hello": nonce}:
            state = reply if isinstance(reply, str) else "no valid hello"
            return no_start(f"the checking process did not start ({state}) {link.stderr_tail()}".strip())
        seq = 0
        for step in check.plan.steps:
            if not check.todo():
                break
            if step["kind"] in CELLS:
                if step["id"] in check.failed_cells:
                    continue
                seq += 1
                link.send({"op": "cell", "seq": seq, "id": step["id"], "source": step["source"]})
                # a setup cell (locked: the notebook's own imports) may take as long as a start
                limit = startup_timeout if step["kind"] == "setup" else cell_timeout
                reply = _parse(link.receive(min(deadline, time.monotonic() + limit)))
                if isinstance(reply, dict) and reply.get("seq") == seq and reply.get("cell") in ("done", "error"):
                    continue
                status, message = ("timeout", "") if reply == "timeout" else \
                    ("crashed", "" if reply == "eof" else "the checking process sent something that is not a reply")
                if step["kind"] == "setup":   # nothing works without it (and student files may be imported)
                    check.give_up(status, f"the setup cell {step['id']} did not finish ({status}) {message}".strip())
                check.failed_cells[step["id"]] = (status, message)
                return True
            for f in step["functions"]:
                gid = check.plan.defined_in.get(f)
                if gid in check.failed_cells:
                    status, message = check.failed_cells[gid]
                    for _, k in check.todo(f):
                        check.decide(f, k, "answer-" + status, message)
                    continue
                for _, k in check.todo(f):
                    seq += 1
                    link.send({"op": "call", "seq": seq, "function": f, "args": encode(check.inputs[(f, k)])})
                    limit = max(cell_timeout, (call_timeouts or {}).get((f, check.cases[f][k]), 0))
                    reply = _parse(link.receive(min(deadline, time.monotonic() + limit)))
                    if reply in ("timeout", "eof"):
                        check.decide(f, k, "timeout" if reply == "timeout" else "crashed", onward=True)
                        return True
                    if not isinstance(reply, dict) or reply.get("seq") != seq:
                        check.decide(f, k, "wrong", "the checking process sent something that is not a result")
                        return True
                    check.done[(f, k)] = judge(f, check.cases[f][k], check.inputs[(f, k)], check.want[(f, k)], reply)
        return True
    finally:
        link.close()


def evaluate(plan: Plan, box, reference: dict, *, cell_timeout: float = 30, deadline: float | None = None,
             seed: int | None = None, startup_timeout: float = 120, timeouts: dict | None = None) -> dict:
    """Run ``plan`` in ``box`` (``box.spawn`` starts a command in a fresh sandbox); return ``{test cell
    grade_id: Verdict}`` for every test cell that checks a graded function, each judged on fresh
    inputs shaped like its own cases. ``deadline`` is a ``time.monotonic()`` value. ``timeouts``
    (test cell grade_id -> seconds, declared by the source notebook) lets the calls of that cell's
    cases run longer than ``cell_timeout``."""
    deadline = deadline if deadline is not None else time.monotonic() + 3600
    call_timeouts = {}
    for gid, seconds in (timeouts or {}).items():
        for pair in plan.test_cases.get(gid, ()):
            call_timeouts[pair] = max(seconds, call_timeouts.get(pair, 0))
    check = Ledger(plan, reference, np.random.default_rng(seed))
    started, runs, max_runs = False, 0, len(plan.steps) + len(check.todo()) + 2
    while check.todo() and runs < max_runs and time.monotonic() < deadline:
        runs += 1
        if not _run(check, box, cell_timeout, startup_timeout, deadline, first=not started, call_timeouts=call_timeouts):
            break
        started = True
    if not started:
        check.give_up("infra", "the time budget ran out before the check could start")
    elif time.monotonic() >= deadline:
        check.give_up("timeout", "the time budget ran out")
    else:
        check.give_up("crashed", f"the checking process failed {runs} times")
    return check.verdicts()
