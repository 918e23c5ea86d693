"""Reasons from the remote server's words and the status code, and `hard` only for never."""

from __future__ import annotations

import pytest

from mailstats.reports import HARD_REASONS, REASONS
from mailstats.reports.classify import errortype, implied_status, reason


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (
            "5.1.1",
            "550 5.1.1 <a@example.org>: Recipient address rejected: User unknown",
            "userunknown",
        ),
        (
            "5.0.0",
            "554 delivery error: dd This user doesn't have a yahoo.com account",
            "userunknown",
        ),
        ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found", "userunknown"),
        ("5.1.10", "Domain nomail.example does not accept mail (nullMX)", "hostunknown"),
        ("5.4.4", "Host or domain name not found. Name service error for name=x", "hostunknown"),
        ("5.1.6", "", "hasmoved"),
        (
            "5.2.2",
            "552 5.2.2 The email account that you tried to reach is over quota",
            "mailboxfull",
        ),
        ("5.2.1", "550 5.2.1 <a@example.net>: mailbox is disabled", "suspend"),
        (
            "5.7.1",
            "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
            "blocked",
        ),
        ("5.7.1", "550 5.7.1 Message rejected as spam by Content Filtering", "spamdetected"),
        ("5.7.1", "554 5.7.1 Message rejected: virus found in attachment", "virusdetected"),
        ("5.7.1", "550 5.7.1 Message rejected due to local policy", "policyviolation"),
        (
            "5.7.26",
            "550 5.7.26 Unauthenticated email from example.com is not accepted due to DMARC",
            "authfailure",
        ),
        (
            "5.7.25",
            "550 5.7.25 The IP address sending this message does not have a PTR record",
            "requireptr",
        ),
        ("4.7.28", "421 4.7.28 unusual rate of mail; try again later", "ratelimited"),
        ("4.4.5", "421 4.4.5 Too many connections from your host", "toomanyconn"),
        ("5.3.4", "552 5.3.4 Message size exceeds fixed maximum message size", "mesgtoobig"),
        ("5.2.3", "", "exceedlimit"),
        ("5.6.0", "", "contenterror"),
        ("5.7.0", "530 5.7.0 Must issue a STARTTLS command first", "securityerror"),
        ("4.4.1", "connect to mx.example.net[192.0.2.1]:25: Connection timed out", "networkerror"),
        ("5.3.1", "", "systemfull"),
        ("5.3.0", "", "systemerror"),
        ("5.0.0", "Command died with status 1: procmail", "mailererror"),
        ("4.4.7", "", "expired"),
        ("5.6.0", "550 5.6.0 Message is not RFC 5322 compliant", "notcompliantrfc"),
        ("5.0.0", "something went wrong", "undefined"),
        ("5.1.1", "550 5.1.1 user unknown; your IP is listed at spamhaus", "userunknown"),
    ],
)
def test_reason(status: str, text: str, expected: str) -> None:
    assert reason(status, text) == expected
    assert expected in REASONS


@pytest.mark.parametrize("why", REASONS)
def test_hard_only_for_reasons_that_mean_never(why: str) -> None:
    assert errortype(why, "5.1.1") == ("hard" if why in HARD_REASONS else "soft")
    assert errortype(why, "4.1.1") == "soft"  # a transient status never suppresses
    assert errortype(why, "5.1.1", delayed=True) == "soft"


def test_hard_reasons_are_the_documented_three() -> None:
    assert {"userunknown", "hostunknown", "hasmoved"} == HARD_REASONS


def test_implied_status_takes_the_class_given() -> None:
    assert implied_status("mailboxfull", "4") == "4.2.2"
    assert implied_status("userunknown", "5") == "5.1.1"
    assert implied_status("undefined", "5") == "5.0.0"
    assert all(implied_status(r, "5").startswith("5.") for r in REASONS)
