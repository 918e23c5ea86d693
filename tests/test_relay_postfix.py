"""End to end with Debian's Postfix as the sending MTA: mail goes into Postfix, Postfix hands
it to the relay as its after-queue content filter (one recipient per delivery), the relay's
copies come back in on the reinjection port and Postfix delivers them to a test SMTP server.
Postfix's own log then goes through `mailstats ingest-maillog`. Both backends."""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

from click.testing import CliRunner
from starlette.testclient import TestClient

from mailstats.cli import cli
from mailstats.relay import Background
from mailstats.settings import Settings
from mailstats.store import suppressions
from mailstats.web.app import App
from tests import postfix
from tests.smtp_sink import Sink
from tests.test_relay import get, message, parsed, part


def wait_for(sink: Sink, count: int, mta: postfix.Postfix) -> None:
    """Until Postfix has delivered `count` messages (another process; not a timing test)."""
    deadline = time.monotonic() + 90
    while len(sink.received) < count:
        assert time.monotonic() < deadline, f"Postfix delivered {len(sink.received)}:\n{mta.said()}"
        time.sleep(0.1)


def test_postfix_with_the_relay_as_content_filter(
    app: App, settings: Settings, http: TestClient, token: str, tmp_path: Path
) -> None:
    postfix.need()
    suppressions.add(app.store, app.store.account("acme").id, "gone@example.org")
    relay_port = postfix.free_port()
    with Sink() as sink:
        mta = postfix.Postfix(relay_port, sink.port, token)
        relayed = settings.replace(
            smtp_listen=f"127.0.0.1:{relay_port}", smtp_next_hop=f"127.0.0.1:{mta.reinject}"
        )
        with Background(relayed, app.store), mta:
            rcpts = ["ann@example.org", "bob@example.org", "gone@example.org"]
            with smtplib.SMTP("127.0.0.1", mta.port) as smtp:
                smtp.sendmail("news@shop.example", rcpts, message(", ".join(rcpts)))
            # two tracked copies, and Postfix's bounce to the sender for the suppressed one
            wait_for(sink, 3, mta)
    log = tmp_path / "maillog"
    log.write_text(mta.said())
    copies = [r for r in sink.received if r.sender.startswith("bounces+")]
    assert sorted(r.recipients[0] for r in copies) == ["ann@example.org", "bob@example.org"]
    for copy in copies:
        msg = parsed(copy.data)
        assert msg["List-Unsubscribe"].startswith("<http://t.test/u/")
        assert 'href="http://t.test/c/' in part(msg, "text/html").get_content()
        assert msg["X-Mailstats-Emailing"] is None
    [bounce] = [r for r in sink.received if r.recipients == ["news@shop.example"]]
    assert b"5.7.1" in bounce.data and b"suppressed" in bounce.data
    emailing = get(http, token, "ms/emailings")["data"][0]
    assert emailing["destinations"] == "2"
    # Postfix's log: the copies' deliveries are found through their bounce addresses; the
    # hand-over to the relay and the bounce to the sender are no destination's
    out = CliRunner().invoke(
        cli, ["ingest-maillog", "--account", "acme", "--db", settings.db, str(log)]
    )
    assert out.exit_code == 0, out.output
    assert "2 event(s) stored" in out.output, (out.output, mta.said())
    deliveries = get(http, token, f"ms/emailing/{emailing['id']}/deliveries")
    assert deliveries["total"] == 2
