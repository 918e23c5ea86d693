"""Postfix's log read into delivery results: `status=sent` a delivery, `status=bounced` (or
`expired`) an error, `status=deferred` one more attempt of a later delivery.

A queue ID's lines come apart in time (cleanup names the Message-ID, qmgr the envelope
sender, smtp each recipient's result), so a `MaillogReader` remembers what it saw of each
queue ID until qmgr says `removed`. Its memory is plain data (`state`), to be kept between
runs of a log that is followed. Lines it does not understand are counted, never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mailstats.reports import classify

__all__ = ["MaillogReader", "Outcome"]

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
_SYSLOG = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d)(?:\.\d+)? +\S+ +"
    r"(?P<prog>[^\s\[:]+)(?:\[\d+\])?: (?P<text>.*)"
)
_ISO = re.compile(
    r"(?P<when>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) +\S+ +"
    r"(?P<prog>[^\s\[:]+)(?:\[\d+\])?: (?P<text>.*)"
)
_QUEUED = re.compile(r"(?P<qid>[0-9A-Za-z]{5,20}): (?P<rest>.*)")
_TO = re.compile(r"to=<(?P<to>[^>]*)>,")
_DSN = re.compile(r"\bdsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3})\b")
_STATUS = re.compile(r"\bstatus=(?P<status>sent|bounced|deferred|expired)\b(?: \((?P<text>.*)\))?$")
_SAID = re.compile(r"said: (?P<words>.*?)(?: \(in reply to [^)]*\))?$")
_REPLY_CODE = re.compile(r"([245]\d\d)[ -]")
_MAX_QUEUES = 100_000  # queue IDs remembered at most; the oldest go first


@dataclass(frozen=True)
class Outcome:
    """One recipient's result, with what leads back to its destination."""

    kind: str  # "deliveries" or "errors"
    ts: int  # UTC epoch seconds of the log line
    queue_id: str
    recipient: str
    message_id: str | None
    sender: str | None
    attempts: int  # deliveries: 1 + the deferrals seen before
    status: str  # dsn=, "2.0.0"
    errorcode: str  # errors: the remote's reply code, else ""
    description: str  # errors: the remote's words, else Postfix's
    errortype: str  # errors: "hard" only where the reason means never (reports.classify)
    line: str  # the log line, whose hash keys the event


class MaillogReader:
    """Feed lines with `feed`; it answers the outcomes they complete."""

    def __init__(self, zone: ZoneInfo, state: dict[str, Any] | None = None) -> None:
        self.zone = zone  # of syslog times, which carry neither year nor offset
        state = state or {}
        self.queues: dict[str, dict[str, Any]] = dict(state.get("queues", {}))
        self.counts = {"lines": 0, "outcomes": 0, "deferred": 0, "other": 0, "unknown": 0}

    @property
    def state(self) -> dict[str, Any]:
        return {"queues": self.queues}

    def feed(self, line: str) -> Outcome | None:
        self.counts["lines"] += 1
        line = line.rstrip("\r\n")
        parsed = self._parse(line)
        if parsed is None:
            self.counts["unknown"] += 1
            return None
        ts, text = parsed
        queued = _QUEUED.fullmatch(text)
        if queued is None:
            self.counts["other"] += 1  # connect, disconnect, warnings, statistics ...
            return None
        qid, rest = queued["qid"], queued["rest"]
        if rest.startswith("message-id="):
            self._queue(qid)["message_id"] = rest[len("message-id=") :].strip()
        elif rest.startswith("from=<"):
            self._queue(qid)["sender"] = rest[len("from=<") :].split(">", 1)[0]
        elif rest == "removed":
            self.queues.pop(qid, None)
        elif (to := _TO.match(rest)) is not None and (status := _STATUS.search(rest)):
            return self._result(ts, qid, to["to"], rest, status, line)
        else:
            self.counts["other"] += 1
        return None

    def _result(
        self, ts: int, qid: str, rcpt: str, rest: str, status: re.Match[str], line: str
    ) -> Outcome | None:
        queue = self._queue(qid)
        dsn = _DSN.search(rest)
        code = dsn["dsn"] if dsn else ""
        text = status["text"] or ""
        if status["status"] == "deferred":
            deferred = queue.setdefault("deferred", {})
            deferred[rcpt] = int(deferred.get(rcpt, 0)) + 1
            self.counts["deferred"] += 1
            return None
        attempts = 1 + int(queue.get("deferred", {}).pop(rcpt, 0))
        said = _SAID.search(text)
        words = said["words"] if said else text
        reply = _REPLY_CODE.match(words)
        self.counts["outcomes"] += 1
        sent = status["status"] == "sent"
        return Outcome(
            kind="deliveries" if sent else "errors",
            ts=ts,
            queue_id=qid,
            recipient=rcpt,
            message_id=queue.get("message_id"),
            sender=queue.get("sender"),
            attempts=attempts,
            status=code,
            errorcode="" if sent or reply is None else reply.group(1),
            description="" if sent else words[:2048],
            errortype="" if sent else classify.errortype(classify.reason(code, words), code),
            line=line,
        )

    def _queue(self, qid: str) -> dict[str, Any]:
        queue = self.queues.get(qid)
        if queue is None:
            if len(self.queues) >= _MAX_QUEUES:
                del self.queues[next(iter(self.queues))]
            queue = self.queues[qid] = {}
        return queue

    def _parse(self, line: str) -> tuple[int, str] | None:
        """(UTC epoch seconds, the text after "program[pid]: ") of a log line."""
        iso = _ISO.match(line)
        if iso is not None:
            try:
                when = datetime.fromisoformat(iso["when"].replace(" ", "T"))
            except ValueError:
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=self.zone)
            return int(when.timestamp()), iso["text"]
        plain = _SYSLOG.match(line)
        if plain is None or plain["mon"] not in _MONTHS:
            return None
        hour, minute, second = (int(x) for x in plain["time"].split(":"))
        now = datetime.now(UTC).astimezone(self.zone)
        try:
            when = datetime(now.year, _MONTHS[plain["mon"]], int(plain["day"]), hour, minute,
                            second, tzinfo=self.zone)  # fmt: skip
        except ValueError:
            return None
        if when > now + timedelta(days=1):  # a December line read in January
            when = when.replace(year=now.year - 1)
        return int(when.timestamp()), plain["text"]
