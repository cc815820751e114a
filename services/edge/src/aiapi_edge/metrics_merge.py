"""One Prometheus exposition for a whole edge from its workers' (pure: no I/O).

Every worker keeps its own registry. The supervisor's ``/metrics`` shows what one edge process
would: counters, histograms and summaries are summed over the workers (same names, same labels,
so dashboards and alerts need no change), their ``_created`` timestamps are dropped (a sum of
them means nothing); a gauge is a state of one process (its spool's depth, its view of the
upstream keys), so each worker's is shown with a ``worker`` label (``sum without (worker)``
gives the edge's spool depth). Each family's ``# HELP`` and ``# TYPE`` appear once, its samples
together, as the text format requires.
"""

from __future__ import annotations

from collections.abc import Iterable

_SUMMED = frozenset({"counter", "histogram", "summary"})


def labelled(sample: str, label: str, value: str) -> str:
    """``sample`` with ``label="value"`` added first to its labels."""
    pair = f'{label}="{value}"'
    brace = sample.find("{")
    space = sample.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        rest = sample[brace + 1 :]
        return f"{sample[: brace + 1]}{pair}{'' if rest.startswith('}') else ','}{rest}"
    if space == -1:
        return sample
    return f"{sample[:space]}{{{pair}}}{sample[space:]}"


def _number(value: float) -> str:
    return f"{value:.1f}" if value.is_integer() and abs(value) < 1e15 else repr(value)


class _Family:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.headers: list[str] = []
        self.sums: dict[str, float] = {}  # series (name and labels) -> summed value
        self.rows: list[str] = []  # gauges and untyped: labelled per worker

    def add(self, sample: str, worker: str, label: str) -> None:
        if self.kind not in _SUMMED:
            self.rows.append(labelled(sample, label, worker))
            return
        series, _, value = sample.rpartition(" ")
        if series.split("{", 1)[0].endswith("_created"):
            return
        try:
            number = float(value)
        except ValueError:
            return
        self.sums[series] = self.sums.get(series, 0.0) + number

    def lines(self) -> list[str]:
        summed = [f"{series} {_number(total)}" for series, total in self.sums.items()]
        return [*self.headers, *summed, *self.rows]


def merge(expositions: Iterable[tuple[str, str]], label: str = "worker") -> str:
    """Merge ``(worker, text)`` pairs into one exposition (see the module's docstring)."""
    families: dict[str, _Family] = {}
    for worker, text in expositions:
        family: _Family | None = None
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
                    continue
                kind = parts[3].strip() if parts[1] == "TYPE" and len(parts) > 3 else "untyped"
                family = families.setdefault(parts[2], _Family(kind))
                if parts[1] == "TYPE":
                    family.kind = kind
                if line not in family.headers:
                    family.headers.append(line)
                continue
            if family is None:
                family = families.setdefault("", _Family("untyped"))
            family.add(line, worker, label)
    lines = [
        row
        for name, family in families.items()
        if not name.endswith("_created")  # prometheus_client shows a counter's as a gauge
        for row in family.lines()
    ]
    return "\n".join(lines) + "\n" if lines else ""
