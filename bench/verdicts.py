"""Precision and recall of the machine verdicts on the labelled trace corpus:
bench/verdicts.py [--backend sqlite|postgres] (also `bench/run --only verdicts`).

The corpus (tests/fixtures/verdicts/corpus.jsonl, written by make_corpus.py beside it) is
replayed into a fresh database in time order, in derive-sized batches, then settled; each
stored click and open is compared with its label (machine is the positive class). Prints
one JSON line per figure (bench/results.py) and what was missed or wrongly flagged.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from databases import PG_SERVER, _pg_admin  # noqa: E402
from results import Goal, Result, emit  # noqa: E402
from tests.verdict_corpus import replay, traces  # noqa: E402

from mailstats.store import open_store  # noqa: E402

PRECISION = Goal("value", ">=", 0.97)
RECALL = Goal("value", ">=", 0.95)


def measure(backend: str) -> list[Result]:
    """The figures on a database of its own (PostgreSQL: a scratch database, dropped)."""
    if backend == "postgres":
        name = f"mailstats_verdicts_{os.getpid()}"
        _pg_admin(f"CREATE DATABASE {name}")
        try:
            return _measure(f"{PG_SERVER}/{name}", backend)
        finally:
            _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    with tempfile.TemporaryDirectory() as tmp:
        return _measure(str(Path(tmp) / "verdicts.db"), backend)


def _measure(url: str, backend: str) -> list[Result]:
    store = open_store(url)
    try:
        t0 = time.monotonic()
        scores = replay(store)
        seconds = time.monotonic() - t0
    finally:
        store.close()
    events = sum(len(t["events"]) for t in traces())
    results = []
    for kind, score in scores.items():
        note = (f"{score.true_pos + score.false_neg} machine and"
                f" {score.true_neg + score.false_pos} human {kind}; missed:"
                f" {dict(score.missed) or 'none'}; people flagged: {dict(score.wrong) or 'none'}")  # fmt: skip
        results.append(Result(f"verdicts_{kind}_precision", backend, round(score.precision, 4),
                              "", goal=PRECISION, note=note))  # fmt: skip
        results.append(Result(f"verdicts_{kind}_recall", backend, round(score.recall, 4), "",
                              goal=RECALL))  # fmt: skip
        lost = score.false_pos if kind == "clicks" else 0
        if kind == "clicks":
            results.append(Result("verdicts_human_clicks_lost", backend, lost, "clicks",
                                  goal=Goal("value", "<=", 0, "clicks")))  # fmt: skip
    results.append(Result("verdicts_replay", backend, round(events / seconds), "events/s",
                          note=f"{events} corpus events stored, judged and settled"))  # fmt: skip
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    for result in measure(args.backend):
        emit(result, [])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
