"""How well mailstats reads bounces: recognition, status, reason and hard/soft accuracy per
format family, over the labelled samples in tests/fixtures/reports (labels.json).

    .venv/bin/python bench/bounces.py            # the table
    .venv/bin/python bench/bounces.py --misses   # and every sample that was read wrong

A sample is recognised when it gives the labelled kinds for the labelled recipients (or, for
an auto-reply or a delivery notice, is answered as not a bounce). Status, reason and hard/soft
are compared per labelled error event, where the label gives them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from mailstats.reports import (
    BounceEvent,
    ComplaintEvent,
    DeliveryEvent,
    NotABounce,
    ReportError,
    parse_report,
)

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "reports"
KIND = {BounceEvent: "errors", ComplaintEvent: "abuses", DeliveryEvent: "deliveries"}


def check(name: str, label: dict[str, Any]) -> tuple[dict[str, list[int]], list[str]]:
    """[right, asked] per measure for one sample, and what went wrong."""
    score: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses: list[str] = []
    try:
        events = parse_report((SAMPLES / name).read_bytes())
    except NotABounce as exc:
        events, not_a_bounce = [], str(exc)
    except ReportError as exc:
        events, not_a_bounce = [], ""
        misses.append(f"refused: {exc}")
    else:
        not_a_bounce = ""
    if label.get("not_a_bounce"):
        ok = bool(not_a_bounce)
        score["recognised"] = [int(ok), 1]
        if not ok:
            misses.append(f"expected not a bounce, got {len(events)} event(s)")
        return score, misses
    wanted = label["events"]
    got = {(KIND[type(e)], (e.recipient or "").lower()): e for e in events}
    found = [got.get((w["kind"], w.get("recipient", "").lower())) for w in wanted]
    if all(w.get("recipient") is None for w in wanted):  # recipient not labelled
        found = [next((e for e in events if KIND[type(e)] == w["kind"]), None) for w in wanted]
    ok = all(f is not None for f in found) and len(events) == len(wanted)
    score["recognised"] = [int(ok), 1]
    if not ok:
        misses.append(f"expected {[(w['kind'], w.get('recipient')) for w in wanted]}, got "
                      f"{[(KIND[type(e)], e.recipient) for e in events]}")  # fmt: skip
    for want, event in zip(wanted, found, strict=True):
        if not isinstance(event, BounceEvent):
            continue
        for measure in ("status", "errorcode", "reason", "errortype"):
            if measure in want:
                right = getattr(event, measure) == want[measure]
                score[measure][0] += right
                score[measure][1] += 1
                if not right:
                    misses.append(f"{measure} {getattr(event, measure)!r}, label {want[measure]!r}")
    return score, misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list every sample read wrong")
    args = parser.parse_args()
    labels = json.loads((SAMPLES / "labels.json").read_text())
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    wrong = []
    for name in sorted(labels):
        label = labels[name]
        score, misses = check(name, label)
        for family in (label["family"], "all"):
            for measure, (right, asked) in score.items():
                table[family][measure][0] += right
                table[family][measure][1] += asked
        wrong += [f"{name}: {m}" for m in misses]
    measures = ("recognised", "status", "errorcode", "reason", "errortype")
    print(f"{'family':<14}" + "".join(f"{m:>16}" for m in measures))
    for family in sorted(table, key=lambda f: (f == "all", f)):
        cells = []
        for m in measures:
            right, asked = table[family][m]
            cells.append(f"{right}/{asked} ({right / asked:.2f})" if asked else "-")
        print(f"{family:<14}" + "".join(f"{c:>16}" for c in cells))
    if args.misses:
        print("\n".join(["", *wrong]) if wrong else "\nno misses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
