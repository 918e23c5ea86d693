"""One result per measured figure: a JSON line when it is made, a row of the final table."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    """`ratio` or `value`, compared with `op` ('>=', '<=' or '<') to `limit`."""

    of: str
    op: str
    limit: float
    unit: str = ""

    def met(self, value: float, ratio: float | None) -> bool | None:
        x = ratio if self.of == "ratio" else value
        if x is None:
            return None
        return {">=": x >= self.limit, "<=": x <= self.limit, "<": x < self.limit}[self.op]

    def __str__(self) -> str:
        suffix = "x" if self.of == "ratio" and self.op != ">=" else f" {self.unit}".rstrip()
        return f"{self.of} {self.op} {self.limit:g}{suffix}"


@dataclass(frozen=True)
class Result:
    name: str
    backend: str
    value: float
    unit: str
    ceiling: float | None = None
    goal: Goal | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.ceiling else self.value / self.ceiling

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.value, self.ratio)

    def as_json(self) -> str:
        ratio = self.ratio
        return json.dumps({
            "name": self.name, "backend": self.backend, "value": _round(self.value),
            "unit": self.unit, "ceiling": None if self.ceiling is None else _round(self.ceiling),
            "ratio": None if ratio is None else round(ratio, 3),
            "goal": None if self.goal is None else str(self.goal), "met": self.met,
        })  # fmt: skip


def _round(x: float) -> float:
    return round(x, 2) if abs(x) < 100 else round(x)


def emit(result: Result, sink: list[Result]) -> None:
    sink.append(result)
    print(result.as_json(), flush=True)
    if result.note:
        print(f"  {result.name}: {result.note}", file=sys.stderr, flush=True)


def _cells(r: Result) -> list[str]:
    ratio = "" if r.ratio is None else f"{r.ratio:.3f}"
    ceiling = "" if r.ceiling is None else f"{_round(r.ceiling):,}"
    met = {True: "yes", False: "NO", None: ""}[r.met]
    goal = "" if r.goal is None else str(r.goal)
    return [r.name, r.backend, f"{_round(r.value):,} {r.unit}", ceiling, ratio, goal, met]


HEADER = ["name", "backend", "value", "ceiling", "ratio", "goal", "met"]


def table(results: list[Result]) -> str:
    """A plain-text table, also valid Markdown."""
    rows = [HEADER, *(_cells(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def notes(results: list[Result]) -> str:
    return "\n".join(f"- {r.name} ({r.backend}): {r.note}" for r in results if r.note)
