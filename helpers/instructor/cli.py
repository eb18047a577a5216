"""``cnn-course``: the instructor's tool, from release to grades.

    cnn-course release [ASSIGNMENT ...]
    cnn-course autograde ASSIGNMENT|--all [--jobs N] [--student S] [--force]
                         [--scheduler tls://HOST:PORT --tls-dir DIR | --tls-ca F --tls-cert F --tls-key F] [--insecure]
                         [--writers N]
    cnn-course feedback ASSIGNMENT|--all [--student S]
    cnn-course export [--out FILE]
    cnn-course report [--out DIR]
    cnn-course site [--out DIR] [--edition student|instructor] [ASSIGNMENT ...]
    cnn-course demo [--dir DIR] [--jobs N]
    cnn-course refdata [--check] [--out FILE]
    cnn-course gradebook check
    cnn-course gradebook migrate --to URL [--from URL] [--replace]
    cnn-course worker SCHEDULER [--nworkers N] [--no-sandbox] [--tls-dir DIR] [--insecure] [-- DASK-WORKER-OPTIONS]
    cnn-course cluster scheduler [--host H] [--port P] [--tls-dir DIR] [--allowed-failures N] [--insecure]
    cnn-course cluster certs --out DIR [--host NAME ...] [--days N]

Global options: ``--root`` (the course directory, default: this repository), ``--db-url`` (or
``CNN_COURSE_DB_URL``: the gradebook, SQLite ``sqlite:///PATH``, default ``<root>/gradebook.db``, or
PostgreSQL ``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB``), ``--config`` (the nbgrader config
file, default ``<root>/nbgrader_config.py``).

``site`` runs the source notebooks of ``--root`` (its nbgrader source folder, ``notebooks/``) and writes
``<root>/site`` unless ``--out`` says otherwise; the config's solution and hidden-test delimiters and
stubs make the student edition.

``refdata`` runs the reference solutions in the source notebooks of ``--root``. The file it writes
(``--out``) defaults to the package's ``data/reference_outputs.h5`` (``helpers.data.REFERENCE_FILE``, what
learners' checks load) only when ``--root`` is this repository; for another course directory ``--out``
is required, so that another course's solutions never overwrite the package's data by accident.
``--check`` writes nothing: it compares what the solutions of ``--root`` compute with ``--out``
(default: the package's file) and exits 1 if they differ.
A problem with the input (an unknown assignment, no ``submitted/`` folder, an unreadable config,
a malformed gradebook URL, an unreachable database or a refused login) is reported in one line and
exits with status 2, without a traceback and without the database password; anything else is a bug and
keeps its traceback. Grading settings and their defaults: :mod:`helpers.instructor.options`.

``autograde --scheduler`` grades on a Dask cluster (:mod:`helpers.instructor.cluster`): the central
gradebook must then be PostgreSQL, a ``tls://`` scheduler needs the client certificate
(``--tls-dir`` from ``cluster certs``, or ``--tls-ca/--tls-cert/--tls-key``), and ``tcp://`` is
refused off loopback unless ``--insecure``. ``worker`` prepares a worker machine (sandbox users,
probe) and runs ``dask worker`` with one thread and one sandbox slot per process; ``cluster
scheduler`` runs ``dask scheduler`` with grading's settings; ``cluster certs`` makes a CA and the
scheduler's, workers' and client's certificates, and prints the command lines that use them.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .course import ASSIGNMENTS, ROOT
from .nbapi import CourseError


def _assignments(args) -> list[str]:
    if getattr(args, "all", False) or not getattr(args, "assignment", None):
        return [a.id for a in ASSIGNMENTS]
    return list(args.assignment) if isinstance(args.assignment, list) else [args.assignment]


def _config(args, overrides=None):
    from .nbapi import load_config

    return load_config(args.root, args.db_url, args.config, overrides)


def cmd_release(args) -> int:
    from .release import release

    release(_config(args), _assignments(args), stream=sys.stdout)
    return 0


def cmd_autograde(args) -> int:
    from .autograde import autograde, summary_table

    if not args.all and not args.assignment:
        raise CourseError("name an assignment or use --all")
    outcomes = autograde(args.root, _assignments(args), student=args.student, force=args.force,
                         db_url=args.db_url, config_file=args.config, scheduler=args.scheduler,
                         tls=_tls(args, "client"), insecure=args.insecure,
                         options=dict(jobs=args.jobs, cell_timeout=args.cell_timeout, budget=args.budget,
                                      sandbox=False if args.no_sandbox else None,
                                      out_of_kernel=False if args.no_out_of_kernel else None,
                                      memory_mib=args.memory_limit, max_processes=args.max_processes,
                                      host_writers=args.writers))
    print(summary_table(outcomes))
    return 1 if any(o.status in ("failed", "corrupt", "missing", "rejected") for o in outcomes) and args.strict else 0


def _tls(args, role: str):
    from .cluster.security import TLSFiles

    return TLSFiles.from_flags(args.tls_dir, args.tls_ca, args.tls_cert, args.tls_key, role=role)


def cmd_worker(args) -> int:
    from .cluster.commands import start_worker

    start_worker(args.scheduler, args.nworkers, no_sandbox=args.no_sandbox, tls=_tls(args, "worker"),
                 insecure=args.insecure, extra=args.extra)
    return 0


def cmd_cluster(args) -> int:
    from .cluster import commands

    if args.action == "certs":
        commands.certs(args.out, args.host or [], args.days)
        return 0
    commands.start_scheduler(args.host, args.port, tls=_tls(args, "scheduler"), insecure=args.insecure,
                             allowed_failures=args.allowed_failures, extra=args.extra)
    return 0


def _tls_flags(s, role: str) -> None:
    s.add_argument("--tls-dir", default=None, metavar="DIR",
                   help=f"certificates made by `cnn-course cluster certs` (ca.pem, {role}.pem, {role}-key.pem)")
    s.add_argument("--tls-ca", default=None, metavar="FILE", help="CA certificate (PEM)")
    s.add_argument("--tls-cert", default=None, metavar="FILE", help=f"the {role}'s certificate (PEM)")
    s.add_argument("--tls-key", default=None, metavar="FILE", help=f"the {role}'s private key (PEM)")
    s.add_argument("--insecure", action="store_true",
                   help="allow an unencrypted tcp:// scheduler on a non-loopback address (a network you trust)")


def cmd_feedback(args) -> int:
    from .feedback import feedback_overrides
    from .grading.discover import check_id
    from .nbapi import make_api

    if args.student is not None and check_id(args.student):   # nbgrader reads a student id as a glob
        raise CourseError(check_id(args.student))
    api = make_api(_config(args, feedback_overrides()))
    failed = 0
    for a in _assignments(args):
        res = api.generate_feedback(a, args.student, force=True)
        status = "ok" if res.get("success") else "FAILED"
        failed += not res.get("success")
        print(f"feedback {a}: {status}" + ("" if res.get("success") else f"\n{(res.get('error') or '')[-800:]}"))
    print(f"feedback pages are in {Path(args.root) / 'feedback'}")
    return 1 if failed else 0


def cmd_export(args) -> int:
    from .grades import export_csv

    out = Path(args.out or Path(args.root) / "exports" / "grades_per_question.csv")
    nb_out = out.with_name("grades_nbgrader.csv")
    export_csv(_config(args), out, nb_out)
    print(f"per-question grades: {out}\nnbgrader's export:   {nb_out}")
    return 0


def cmd_report(args) -> int:
    from .grades import report

    text, pngs = report(_config(args), Path(args.out or Path(args.root) / "reports"))
    print(text)
    for p in pngs:
        print(f"plot: {p}")
    return 0


def cmd_site(args) -> int:
    from .site import EDITIONS, build_site

    out = Path(args.out) if args.out else Path(args.root) / "site"
    result = build_site(out, editions=args.edition or EDITIONS, assignments=args.assignment or None,
                        root=args.root, config=_config(args))
    for edition, paths in result["pages"].items():
        print(f"{edition}: {len(paths)} lessons in {out / edition}")
    for aid, what in result["removed"].items():
        for w in what:
            print(f"  student edition, {aid}: removed {w}")
    print(f"MathJax copy: {result['mathjax_bytes'] / 1e6:.1f} MB; built in {result['seconds']:.1f} s "
          f"(running the notebooks: {result['execute_seconds']:.1f} s)")
    print(f"site written to {out}: open {out / 'index.html'} in a browser (works from file://)")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.dir, jobs=args.jobs, db_url=args.db_url, cell_timeout=args.cell_timeout, budget=args.budget)
    return 0


def cmd_refdata(args) -> int:
    import tempfile

    import h5py
    import numpy as np

    from ..data import REFERENCE_FILE
    from .refdata import reference_functions, write_reference

    root = Path(args.root).resolve()
    if args.out:
        target = Path(args.out)
    elif root == ROOT.resolve() or args.check:
        target = REFERENCE_FILE
    else:
        raise CourseError(f"--root {root} is not this repository ({ROOT}): name the file to write with --out "
                          f"(the package's {REFERENCE_FILE} is written only from the repository's own notebooks)")
    ref = reference_functions(root, _config(args))
    if not args.check:
        print(f"wrote {write_reference(target, ref)} from the reference solutions in {root}")
        return 0
    if not target.exists():
        raise CourseError(f"no reference data file {target} to check")
    with tempfile.TemporaryDirectory() as tmp:
        fresh = write_reference(Path(tmp) / "fresh.h5", ref)
        diffs = []
        with h5py.File(fresh) as a, h5py.File(target) as b:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    if name not in b or not np.array_equal(obj[()], b[name][()]):
                        diffs.append(name)
            a.visititems(visit)
        print(f"{target} is up to date with the solutions in {root}" if not diffs
              else f"{target} differs from what the solutions in {root} compute at: {diffs[:10]}")
        return 1 if diffs else 0


def cmd_gradebook(args) -> int:
    from . import gradebook

    course_url = _config(args).CourseDirectory.db_url
    if args.action == "check":
        gradebook.check(course_url)
        return 0
    gradebook.migrate(args.source or course_url, args.to, replace=args.replace)
    return 0


# Commands that open the gradebook: connect once first, so that a bad URL or server is one line.
GRADEBOOK_COMMANDS = ("release", "autograde", "feedback", "export", "report")


def _check_gradebook(args) -> None:
    from .nbapi import check_gradebook

    if args.command in GRADEBOOK_COMMANDS:
        check_gradebook(_config(args))
    elif args.command == "demo" and args.db_url:
        check_gradebook(args.db_url)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnn-course", description="Instructor tools for the CNN building blocks course.")
    p.add_argument("--root", default=os.environ.get("CNN_COURSE_ROOT", str(ROOT)),
                   help="course directory (holds nbgrader_config.py, notebooks/, submitted/ ...)")
    p.add_argument("--db-url", default=os.environ.get("CNN_COURSE_DB_URL"),
                   help="gradebook SQLAlchemy URL (default: sqlite:///<root>/gradebook.db)")
    p.add_argument("--config", default=None, help="nbgrader config file (default: <root>/nbgrader_config.py)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("release", help="generate the student edition (release/)")
    s.add_argument("assignment", nargs="*", help="assignment ids (default: all)")
    s.set_defaults(func=cmd_release)

    s = sub.add_parser("autograde", help="grade submitted/ in parallel")
    s.add_argument("assignment", nargs="?")
    s.add_argument("--all", action="store_true", help="every assignment")
    s.add_argument("--jobs", "-j", type=int, default=None, help="submissions graded at once (default: cores)")
    s.add_argument("--student", default=None)
    s.add_argument("--force", action="store_true", help="regrade submissions already graded and unchanged")
    s.add_argument("--cell-timeout", type=int, default=None,
                   help="seconds per cell (default: GradingOptions.cell_timeout, 30)")
    s.add_argument("--budget", type=int, default=None,
                   help="seconds per submission in all (default: GradingOptions.budget, 300)")
    s.add_argument("--strict", action="store_true", help="exit 1 if any submission failed")
    s.add_argument("--no-sandbox", action="store_true",
                   help="run students' kernels as the grading user, without limits (trusted code only)")
    s.add_argument("--no-out-of-kernel", action="store_true",
                   help="skip the check of each function on fresh inputs outside the kernel")
    s.add_argument("--memory-limit", type=int, default=None, metavar="MiB",
                   help="memory of one submission's processes (default: GradingOptions.memory_mib, 2048)")
    s.add_argument("--max-processes", type=int, default=None,
                   help="processes and threads of one submission (default: GradingOptions.max_processes, 128)")
    s.add_argument("--scheduler", default=None, metavar="tls://HOST:PORT",
                   help="grade on this Dask scheduler's workers instead of local processes (PostgreSQL gradebook)")
    s.add_argument("--writers", type=int, default=None, metavar="N",
                   help="with --scheduler: processes here that check and write the returned grades "
                        "(default: GradingOptions.host_writers; 0: the cores, at most 8)")
    _tls_flags(s, "client")
    s.set_defaults(func=cmd_autograde)

    s = sub.add_parser("feedback", help="HTML feedback without hidden tests")
    s.add_argument("assignment", nargs="?")
    s.add_argument("--all", action="store_true")
    s.add_argument("--student", default=None)
    s.set_defaults(func=cmd_feedback)

    s = sub.add_parser("export", help="per-question CSV (and nbgrader's own CSV)")
    s.add_argument("--out", default=None)
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("report", help="item analysis: table and PNG plots")
    s.add_argument("--out", default=None)
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("site", help="build the student and instructor web editions")
    s.add_argument("assignment", nargs="*", help="assignment ids (default: all, in course order)")
    s.add_argument("--out", default=None, help="output folder (default: <root>/site)")
    s.add_argument("--edition", action="append", choices=("student", "instructor"),
                   help="build only this edition (repeatable; default: both)")
    s.set_defaults(func=cmd_site)

    s = sub.add_parser("demo", help="grade a synthetic class end to end")
    s.add_argument("--dir", default=str(ROOT / "demo"))
    s.add_argument("--jobs", "-j", type=int, default=None)
    s.add_argument("--cell-timeout", type=int, default=10)
    s.add_argument("--budget", type=int, default=90)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("refdata", help="rewrite data/reference_outputs.h5 from the source notebooks of --root")
    s.add_argument("--check", action="store_true", help="only check that the file is up to date")
    s.add_argument("--out", default=None,
                   help="the HDF5 file (default: the package's data/reference_outputs.h5; required when --root "
                        "is not this repository, unless --check)")
    s.set_defaults(func=cmd_refdata)

    s = sub.add_parser("gradebook", help="check the gradebook, or copy it into PostgreSQL")
    gsub = s.add_subparsers(dest="action", required=True)
    g = gsub.add_parser("check", help="connect, and count students, assignments and submissions")
    g.set_defaults(func=cmd_gradebook)
    g = gsub.add_parser("migrate", help="copy the gradebook into an empty database and verify the copy")
    g.add_argument("--to", required=True, metavar="URL",
                   help="target, e.g. postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (an empty database)")
    g.add_argument("--from", dest="source", default=None, metavar="URL",
                   help="source gradebook (default: the course's, from --db-url or <root>/gradebook.db)")
    g.add_argument("--replace", action="store_true", help="drop nbgrader's tables in a non-empty target first")
    g.set_defaults(func=cmd_gradebook)

    s = sub.add_parser("worker", help="prepare this machine and run Dask grading workers",
                       usage="cnn-course worker SCHEDULER [--nworkers N] [--no-sandbox] [TLS] [-- DASK-WORKER-OPTIONS]")
    s.add_argument("scheduler", metavar="SCHEDULER", help="tls://HOST:PORT (or tcp://127.0.0.1:PORT)")
    s.add_argument("--nworkers", "-n", type=int, default=1,
                   help="worker processes: each grades one submission at a time (at most the cores, and "
                        "memory / (GradingOptions.memory_mib + 0.5 GiB))")
    s.add_argument("--no-sandbox", action="store_true", help="start without the sandbox (trusted code only)")
    _tls_flags(s, "worker")
    s.set_defaults(func=cmd_worker, extra=[])   # what follows `--` goes to dask worker as it is

    s = sub.add_parser("cluster", help="the Dask scheduler and the cluster's certificates")
    csub = s.add_subparsers(dest="action", required=True)
    c = csub.add_parser("scheduler", help="run dask scheduler with grading's settings")
    c.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    c.add_argument("--port", type=int, default=8786)
    c.add_argument("--allowed-failures", type=int, default=2,
                   help="workers a submission may kill before it is reported failed, minus one (default: 2)")
    _tls_flags(c, "scheduler")
    c.set_defaults(func=cmd_cluster, extra=[])   # what follows `--` goes to dask scheduler as it is
    c = csub.add_parser("certs", help="make a CA and the scheduler's, workers' and client's certificates")
    c.add_argument("--out", required=True, metavar="DIR")
    c.add_argument("--host", action="append", metavar="NAME", help="a scheduler or worker host name (repeatable)")
    c.add_argument("--days", type=int, default=365)
    c.set_defaults(func=cmd_cluster)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv and ("worker" in argv[:argv.index("--")] or "cluster" in argv[:argv.index("--")]):
        extra, argv = argv[argv.index("--") + 1:], argv[:argv.index("--")]
    args = build_parser().parse_args(argv)
    if extra:
        args.extra = extra
    args.root = str(Path(args.root).resolve())
    try:
        _check_gradebook(args)
        return args.func(args)
    except CourseError as exc:   # an input problem: one line. A bug keeps its traceback.
        print(f"cnn-course: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if not isinstance(exc, SQLAlchemyError):
            raise
        from .nbapi import display_url, error_line, normalize_db_url
        from sqlalchemy.engine import make_url

        url = args.db_url or ""
        try:
            password = make_url(normalize_db_url(url)).password if url else None
        except Exception:
            password = None
        where = f" {display_url(url)}" if url else ""
        print(f"cnn-course: error: gradebook{where}: {error_line(exc, password)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnn-course: interrupted; run the same command again to finish (graded work is kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
