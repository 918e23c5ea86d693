"""Bounces, complaints and SES notifications read into events: DSNs (RFC 3464), ARF
(RFC 5965) and its older forwarded forms, the plain-language bounces of the common mail
servers, Amazon SES JSON; auto-replies and delivery notices are told apart as NotABounce.

>>> from mailstats.reports import parse_report
>>> parse_report(b"hello")
Traceback (most recent call last):
  ...
mailstats.reports.common.ReportError: not a bounce or complaint: no delivery-status or feedback-report part and no bounce text that mailstats knows (Content-Type is text/plain)
"""

from mailstats.reports.arf import ComplaintEvent
from mailstats.reports.classify import HARD_REASONS, REASONS
from mailstats.reports.common import ReportError
from mailstats.reports.dsn import BounceEvent, NotABounce
from mailstats.reports.parse import Report, ReportEvents, parse_report
from mailstats.reports.ses import DeliveryEvent

__all__ = [
    "HARD_REASONS",
    "REASONS",
    "BounceEvent",
    "ComplaintEvent",
    "DeliveryEvent",
    "NotABounce",
    "Report",
    "ReportError",
    "ReportEvents",
    "parse_report",
]
