"""The out-of-kernel harness: runs notebook cells and graded calls inside the sandbox, on request.

Started as ``python -I /abs/path/inside/child.py FD`` with the commands on stdin and FD the result
channel (a pipe). It imports only the standard library, NumPy and ``codec.py`` next to it.

Protocol, one JSON line per message, strictly one reply per command:

- ``{"op": "hello", "nonce": N}`` (the first line, before any student code exists here)
  -> ``{"hello": N}``;
- ``{"op": "cell", "seq": i, "id": ID, "source": S}`` runs the cell -> ``{"seq": i, "cell": "done"}``
  or ``{"seq": i, "cell": "error", "error": "..."}``;
- ``{"op": "call", "seq": i, "function": F, "args": ENCODED}`` -> ``{"seq": i, "value": ..., "after":
  ...}`` (the result and the arguments after the call), ``{"seq": i, "raised": "..."}`` or
  ``{"seq": i, "undefined": true}``.

Once a cell has run, student code shares this process and can write anything on FD. The grader
counts on none of it: it knows which command it sent, tells from the process and its own clock
whether a step finished, and judges a result only against the reference on inputs it drew.
"""
import builtins
import importlib.util
import json
import os
import sys
import traceback
import types


def _load_codec():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "codec.py")
    spec = importlib.util.spec_from_file_location("cnn_course_inside_codec", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Null:
    """Absorbs what IPython-only code does with it (``get_ipython().input_transformers...``)."""

    def __call__(self, *a, **k):
        return _Null()

    __getattr__ = __call__

    def __iter__(self):
        return iter(())

    def __bool__(self):
        return False


class _Shell(_Null):
    """A stand-in for IPython's shell: answer cells may call ``get_ipython()`` or ``display``."""

    def __init__(self, ns):
        object.__setattr__(self, "user_ns", ns)
        ns.setdefault("In", [""])
        ns.setdefault("Out", {})


def _describe(exc):
    try:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (line {tb[-1].lineno})" if tb else ""
        return f"{type(exc).__name__}: {str(exc)[:300]}{where}"
    except BaseException:
        return type(exc).__name__


def _to_python(source):
    try:
        compile(source, "<cell>", "exec")
        return source
    except SyntaxError:
        try:   # IPython syntax (%magics, !shell) becomes get_ipython() calls, which do nothing here
            from IPython.core.inputtransformer2 import TransformerManager

            return TransformerManager().transform_cell(source)
        except Exception:
            return source


def main(argv):
    out_fd = int(argv[1])
    cmd_fd = os.dup(0)                       # the commands; student code gets an empty stdin
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(os.devnull)
    sys.argv = [argv[0]]
    codec = _load_codec()
    commands = os.fdopen(cmd_fd, "rb")

    def reply(obj):
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        try:
            while data:
                data = data[os.write(out_fd, data):]
        except OSError:
            os._exit(3)

    def command():
        line = commands.readline()
        if not line:
            sys.exit(0)
        return json.loads(line)

    hello = command()                        # before any student code exists in this process
    reply({"hello": hello.get("nonce") if hello.get("op") == "hello" else None})

    main_module = types.ModuleType("__main__")   # ``import __main__`` gives student code its namespace
    sys.modules["__main__"] = main_module
    ns = main_module.__dict__
    ns["__builtins__"] = builtins
    shell = _Shell(ns)
    ns["get_ipython"] = lambda: shell
    builtins.display = lambda *a, **k: None  # IPython puts display() into builtins
    for folder in (os.getcwd(), os.environ.get("HOME")):
        if folder and folder not in sys.path:
            sys.path.append(folder)          # the student's own modules, after everything else

    while True:
        cmd = command()
        seq = cmd.get("seq")
        if cmd.get("op") == "cell":
            try:
                exec(compile(_to_python(cmd["source"]), f"<cell {cmd.get('id')}>", "exec"), ns)
                reply({"seq": seq, "cell": "done"})
            except BaseException as exc:     # student code may raise anything, SystemExit too
                reply({"seq": seq, "cell": "error", "error": _describe(exc)})
        elif cmd.get("op") == "call":
            args = codec.decode(cmd["args"])
            fn = ns.get(cmd.get("function"))
            if not callable(fn):
                reply({"seq": seq, "undefined": True})
                continue
            try:
                result = fn(*args)
            except BaseException as exc:
                reply({"seq": seq, "raised": _describe(exc)})
                continue
            try:
                value, after = codec.encode(result), codec.encode(args)
            except BaseException as exc:
                value, after = {"opaque": f"unreadable result ({type(exc).__name__})"}, None
            reply({"seq": seq, "value": value, "after": after})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
