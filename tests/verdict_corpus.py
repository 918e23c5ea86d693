"""The labelled trace corpus (fixtures/verdicts/corpus.jsonl) replayed into a store, and the
precision and recall of its machine verdicts; used by test_verdicts_corpus.py and
bench/verdicts.py."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailstats.kinds import KINDS
from mailstats.store import Event, Store
from mailstats.verdicts import HEAD, VERDICTS

CORPUS = Path(__file__).parent / "fixtures" / "verdicts" / "corpus.jsonl"
SENT = 1_772_442_000  # 2026-03-02 09:00 UTC
_KIND = {"click": "clicks", "open": "impressions", "delivery": "deliveries"}
HTML = "<html><body>" + "".join(f'<a href="https://shop.example/{n}">{n}</a>' for n in range(4))


def traces(path: Path = CORPUS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Score:
    """Machine verdicts against the labels, for one kind (machine is the positive class)."""

    true_pos: int = 0
    false_pos: int = 0
    false_neg: int = 0
    true_neg: int = 0
    missed: Counter[str] = field(default_factory=Counter)  # machine sources taken for people
    wrong: Counter[str] = field(default_factory=Counter)  # people's sources taken for machines

    @property
    def precision(self) -> float:
        found = self.true_pos + self.false_pos
        return self.true_pos / found if found else 1.0

    @property
    def recall(self) -> float:
        machines = self.true_pos + self.false_neg
        return self.true_pos / machines if machines else 1.0


def replay(store: Store, batch: int = 250) -> dict[str, Score]:
    """Every trace as a message of one emailing, its events stored in time order in batches
    (the verdict clock at each batch's last event), then settled; scores per kind."""
    account = store.ensure_account("corpus", "UTC")
    spans = [(12 + 38 * n + 9, 12 + 38 * n + 9 + 22, f"https://shop.example/{n}") for n in range(4)]
    emailing = store.create_emailing(account.id, subject="corpus", from_name="Shop",
                                     from_email="news@shop.example", html=HTML, text=None,
                                     tags=[], type="mass", links=spans, created_at=SENT)  # fmt: skip
    links = [link.id for link in sorted(store.links(emailing), key=lambda k: k.start)]
    trap = store.trap_link(emailing)
    assert trap is not None
    found = traces()
    items = [{"email": f"m{t['message']}@example.org", "timestamp": SENT} for t in found]
    dests = store.create_destinations(account.id, emailing, items)
    labels: dict[bytes, tuple[str, str, str]] = {}
    events = []
    for trace, dest in zip(found, dests, strict=True):
        for e in trace["events"]:
            kind = KINDS[_KIND[e["kind"]]]
            key = secrets.token_bytes(16)
            values: tuple[Any, ...]
            if kind.name == "deliveries":
                values, link = (1,), 0
            else:
                link = (
                    0
                    if kind.name == "impressions"
                    else (trap.id if e["link"] < 0 else links[e["link"]])
                )
                values = (
                    (e["ip"], e["ua"], "unknown")
                    if kind.name == "impressions"
                    else (e["ip"], e["ua"])
                )
            ts = SENT + int(e["at"])
            events.append(Event(kind, key, ts, account.id, emailing, dest, link, values,
                                HEAD if e["head"] else 0))  # fmt: skip
            labels[key] = (kind.name, e["label"], e["source"])
    events.sort(key=lambda e: e.ts)
    for at in range(0, len(events), batch):
        chunk = events[at : at + batch]
        store.insert_events(chunk, now=chunk[-1].ts)
    store.settle(now=events[-1].ts + 86400)
    rows = store.backend.fetch(
        "SELECT key, verdict, settled FROM events WHERE account_id = "
        f"{store.backend.placeholder} AND kind IN (1, 2)",
        [account.id],
    )
    scores = {"clicks": Score(), "impressions": Score()}
    for key, verdict, settled in rows:
        assert settled == 1
        kind, label, source = labels[bytes(key)]
        machine, said = label != "human", VERDICTS[int(verdict)] != "human"
        score = scores[kind]
        if machine and said:
            score.true_pos += 1
        elif machine:
            score.false_neg += 1
            score.missed[source] += 1
        elif said:
            score.false_pos += 1
            score.wrong[source] += 1
        else:
            score.true_neg += 1
    return scores
