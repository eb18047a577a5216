"""Output caps: a cell keeps at most ``max_cell_output_bytes`` of output and a notebook at most
``max_notebook_output_bytes``, every byte of every message counted (data, metadata, text,
tracebacks). Over the cap, errors, results and stderr, which decide a grade, stay in short form.

``OutputCap`` is a mixin for an nbclient client: its public ``output`` and ``process_message``
hooks bound what is kept while cells run, and ``cap_notebook`` measures the finished notebook as
it will be written, display updates included.
"""
import json

from nbformat.v4 import new_output


class OutputCap:
    _cell_bytes = 0
    _nb_bytes = 0
    _truncated = False

    def output(self, outs, msg, display_id, cell_index):
        opts = self.ctx().options
        size = size_of(msg.get("content", {})) + size_of(msg.get("metadata", {}))
        self._cell_bytes += size
        self._nb_bytes += size
        if self._cell_bytes <= opts.max_cell_output_bytes and self._nb_bytes <= opts.max_notebook_output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        if not self._truncated:
            self._truncated = True
            outs.append(self._truncation_note())
        short = shorten(msg)
        return super().output(outs, short, display_id, cell_index) if short is not None else None

    def process_message(self, msg, cell, cell_index):
        """Display updates replace an earlier output in place and never pass through ``output``:
        count them too, and drop them once the notebook is over its cap."""
        if msg.get("msg_type") == "update_display_data":
            size = size_of(msg.get("content", {}))
            self._nb_bytes += size
            if size > self.ctx().options.max_cell_output_bytes or \
                    self._nb_bytes > self.ctx().options.max_notebook_output_bytes:
                if not self._truncated:
                    self._truncated = True
                    cell.outputs.append(self._truncation_note())
                return None
        return super().process_message(msg, cell, cell_index)

    def cap_notebook(self, nb) -> None:
        """After the run, the authoritative cap, on the outputs as they will be written (display
        updates land in earlier cells): every cell within its cap, then the notebook within its own,
        largest cells shortened first."""
        opts = self.ctx().options
        sizes = {}
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if size_of(cell.outputs) > opts.max_cell_output_bytes:
                self._shorten_cell(cell, "this cell", opts.max_cell_output_bytes)
            sizes[i] = size_of(cell.outputs)
        total = sum(sizes.values())
        for i in sorted(sizes, key=sizes.get, reverse=True):
            if total <= opts.max_notebook_output_bytes:
                break
            self._shorten_cell(nb.cells[i], "the notebook", opts.max_notebook_output_bytes)
            total -= sizes[i] - size_of(nb.cells[i].outputs)

    def _shorten_cell(self, cell, where: str, limit: int) -> None:
        """Only the short forms of what decides a grade stay, and a line that says why."""
        cell.outputs = [o for o in (shorten_output(o) for o in cell.outputs) if o is not None] + \
            [self._truncation_note(where, limit)]

    def _truncation_note(self, where: str | None = None, limit: int | None = None):
        opts = self.ctx().options
        if where is None:   # while a cell runs: which of the two caps it went over
            where, limit = (("this cell", opts.max_cell_output_bytes) if self._cell_bytes > opts.max_cell_output_bytes
                            else ("the notebook", opts.max_notebook_output_bytes))
        self.ctx().result.note("output truncated")
        return new_output("stream", name="stdout",
                          text=f"\n[output truncated by the grader: {where} wrote more than {limit} bytes]\n")


def size_of(value) -> int:
    """Bytes of ``value`` as JSON: what a message or an output list costs in the notebook."""
    return len(json.dumps(value, default=str))


def shorten(msg):
    """The short form of a message over the cap: errors, results and stderr, cut to 2,000
    characters each, no rich data and no metadata; ``None`` for anything else."""
    msg_type = msg.get("msg_type", "")
    content = msg.get("content", {})
    if not (msg_type in ("error", "execute_result") or (msg_type == "stream" and content.get("name") == "stderr")):
        return None
    short = dict(msg)
    c = {}
    for key in ("name", "ename", "evalue", "execution_count"):
        if key in content:
            c[key] = content[key][:2000] if isinstance(content[key], str) else content[key]
    if isinstance(content.get("text"), str):
        c["text"] = content["text"][:2000]
    if isinstance(content.get("data"), dict) and isinstance(content["data"].get("text/plain"), str):
        c["data"] = {"text/plain": content["data"]["text/plain"][:2000]}
        c["metadata"] = {}
    if isinstance(content.get("traceback"), list):
        c["traceback"] = [str(t)[:2000] for t in content["traceback"][-20:]]
    short["content"] = c
    short["metadata"] = {}
    return short


def shorten_output(out):
    """:func:`shorten` for an output already in a cell."""
    kind = out.get("output_type")
    if kind == "error":
        return new_output("error", ename=str(out.get("ename", ""))[:200], evalue=str(out.get("evalue", ""))[:2000],
                          traceback=[str(t)[:2000] for t in out.get("traceback", [])[-20:]])
    if kind == "stream" and out.get("name") == "stderr":
        return new_output("stream", name="stderr", text=str(out.get("text", ""))[:2000])
    if kind == "execute_result":
        text = out.get("data", {}).get("text/plain", "")
        return new_output("execute_result", data={"text/plain": str(text)[:2000]},
                          execution_count=out.get("execution_count"))
    return None
