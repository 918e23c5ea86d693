"""Bounce (DSN, RFC 3464) and complaint (ARF, RFC 5965) messages read into events.

>>> from mailstats.reports import parse_report
>>> parse_report(b"hello")
Traceback (most recent call last):
  ...
mailstats.reports.common.ReportError: not a multipart/report message (Content-Type is text/plain)
"""

from mailstats.reports.arf import ComplaintEvent
from mailstats.reports.common import ReportError
from mailstats.reports.dsn import BounceEvent
from mailstats.reports.parse import ReportEvents, parse_report

__all__ = ["BounceEvent", "ComplaintEvent", "ReportError", "ReportEvents", "parse_report"]
