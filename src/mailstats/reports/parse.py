"""One entry point for any raw report: find out which kind it is and read it."""

from __future__ import annotations

from typing import TypeAlias

from mailstats.reports.arf import ARF_PARTS, ComplaintEvent, parse_arf
from mailstats.reports.common import ReportError, find_part, load, report_type
from mailstats.reports.dsn import DSN_PARTS, BounceEvent, parse_dsn

ReportEvents: TypeAlias = list[BounceEvent] | list[ComplaintEvent]


def parse_report(raw: bytes) -> ReportEvents:
    """Read a raw bounce (DSN) or complaint (ARF) message into events.

    A DSN gives one BounceEvent per failed or delayed recipient, an ARF one ComplaintEvent.
    Raises ReportError, and nothing else, for anything that is not such a report::

        events = parse_report(Path("bounce.eml").read_bytes())
        events[0].status, events[0].errortype  # ("5.1.1", "hard")
    """
    try:
        envelope, report = load(raw)
        kind = report_type(report)
        if not kind:  # left out by some senders: go by the machine-readable part
            if find_part(report, DSN_PARTS) is not None:
                kind = "delivery-status"
            elif find_part(report, ARF_PARTS) is not None:
                kind = "feedback-report"
        if kind == "delivery-status":
            return parse_dsn(envelope, report)
        if kind == "feedback-report":
            return parse_arf(envelope, report)
        raise ReportError(
            f"unsupported report-type {kind!r}: expected delivery-status or feedback-report"
            if kind
            else "multipart/report without report-type and without a delivery-status "
            "or feedback-report part"
        )
    except ReportError:
        raise
    except Exception as exc:  # a parser bug on hostile input must still be a ReportError
        raise ReportError(f"unreadable report ({type(exc).__name__})") from exc
