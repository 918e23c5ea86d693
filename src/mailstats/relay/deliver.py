"""One accepted message, start to end: its emailing, one destination and one rewritten copy
per recipient, forwarding, and the answer the sender gets. Runs on a worker thread."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence

from mailstats.relay import rewrite
from mailstats.relay.forward import Copy, NextHop, Reply, verdict
from mailstats.relay.signing import Signer as DkimSigner
from mailstats.settings import Settings, host_port
from mailstats.store import Account, Destination, Emailing, Link, Store
from mailstats.store import relay as stored
from mailstats.store import suppressions as sup
from mailstats.tracking import message
from mailstats.tracking.tokens import Signer

__all__ = ["Deliverer"]

log = logging.getLogger("mailstats.relay")
_CACHE_LIMIT = 10_000  # emailings whose links are kept in memory


class Deliverer:
    """Turns one message into copies, forwards them and says what the sender is told."""

    def __init__(self, settings: Settings, store: Store, signer: Signer) -> None:
        self.settings = settings
        self.store = store
        self.signer = signer
        host, port = host_port(settings.smtp_next_hop, "smtp_next_hop")
        self.next_hop = NextHop(host, port, helo=settings.smtp_name)
        self.dkim = (
            DkimSigner(settings.dkim_key, settings.dkim_selector, settings.dkim_domain)
            if settings.dkim_key
            else None
        )
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()  # emailing creation, one key at a time
        self._emailings: dict[tuple[int, str], Emailing] = {}
        self._links: dict[int, dict[str, int]] = {}

    def deliver(
        self,
        account: Account,
        sender: str,
        recipients: Sequence[str],
        mail_options: Sequence[str],
        raw: bytes,
        unsubscribed: set[str],
    ) -> Reply:
        try:
            inc = rewrite.read(raw)
        except rewrite.BadMessage as exc:
            self.counts["messages refused"] += 1
            return Reply(554, f"5.6.0 {exc}")
        skipped = [] if inc.transactional else [r for r in recipients if r in unsubscribed]
        targets = [r for r in recipients if r not in skipped]
        if not targets:
            self.counts["messages refused"] += 1
            return Reply(550, "5.7.1 Every recipient is suppressed: they unsubscribed")
        if inc.untracked is not None:
            return self._untracked(inc, sender, targets, mail_options, len(skipped))
        return self._tracked(account, inc, targets, mail_options, len(skipped))

    def _untracked(
        self,
        inc: rewrite.Incoming,
        sender: str,
        targets: list[str],
        mail_options: Sequence[str],
        skipped: int,
    ) -> Reply:
        """Byte for byte, as it came, in one transaction to every recipient."""
        replies = self.next_hop.send([Copy(sender, tuple(targets), inc.raw)], mail_options, [])
        reply = verdict(replies, skipped)
        self.counts["messages untracked"] += 1
        log.info(
            "untracked message (%s) to %d recipient(s): %s", inc.untracked, len(targets), reply
        )
        return reply

    def _tracked(
        self,
        account: Account,
        inc: rewrite.Incoming,
        targets: list[str],
        mail_options: Sequence[str],
        skipped: int,
    ) -> Reply:
        emailing, made = self._emailing(account, inc)
        known = self._links.setdefault(emailing.id, {})
        if len(self._links) > _CACHE_LIMIT:
            self._links.clear()
            known = self._links.setdefault(emailing.id, {})
        track_text = self.settings.smtp_track_text
        keyed = [(r, stored.copy_key(account.id, inc.message_id, sup.normal(r))) for r in targets]
        urls = inc.urls(track_text)
        dests = stored.copies(self.store, account.id, emailing.id, urls, known, keyed)
        copies = [self._copy(inc, emailing, dest, known, track_text) for dest, _ in dests]
        replies = self.next_hop.send(copies, mail_options, [])
        for (dest, new), reply in zip(dests, replies, strict=True):
            if new and not reply.ok:
                stored.drop_destination(self.store, dest, made)
        if made and not any(r.ok for r in replies):
            self._forget(account.id, inc.emailing_key)
        reply = verdict(replies, skipped)
        self.counts["messages tracked" if reply.ok else "messages not accepted"] += 1
        self.counts["copies forwarded"] += sum(1 for r in replies if r.ok)
        return reply

    def _copy(
        self,
        inc: rewrite.Incoming,
        emailing: Emailing,
        dest: Destination,
        links: dict[str, int],
        track_text: bool,
    ) -> Copy:
        trap = links.get("")  # the emailing's trap link has no URL (see Store.create_emailing)
        trap_link = None if trap is None else Link(trap, -2, -2, "")
        urls = message.urls(self.settings.base_url, self.signer, dest, trap_link)
        headers = message.headers(emailing, urls)
        added = {
            "Message-ID": headers["Message-ID"],  # only when the message has none
            "List-Unsubscribe": headers["List-Unsubscribe"],
            "List-Unsubscribe-Post": headers["List-Unsubscribe-Post"],
        }
        data = inc.copy(
            lambda url: urls.click(links[url]),
            urls.pixel,
            added,
            track_text=track_text,
            trap=urls.trap,
        )
        if self.dkim is not None:
            data = self.dkim.sign(data)
        return Copy(headers["Return-Path"].strip("<>"), (dest.email,), data)

    def _emailing(self, account: Account, inc: rewrite.Incoming) -> tuple[Emailing, bool]:
        """The emailing the message's key names, made from this message when new."""
        cache_key = (account.id, inc.emailing_key)
        found = self._emailings.get(cache_key)
        if found is not None:
            return found, False
        with self._lock:
            made = False
            emailing_id = stored.emailing_for_key(self.store, account.id, inc.emailing_key)
            if emailing_id is None:
                links = [(k.start, k.end, k.url) for k in inc.links]
                emailing_id = stored.create_emailing(
                    self.store,
                    account.id,
                    inc.emailing_key,
                    subject=inc.subject[:1000],
                    from_name=inc.from_name[:1000],
                    from_email=inc.from_email[:320],
                    html=inc.html or "",
                    links=links,
                )
                made = True
            emailing = self.store.emailing(account.id, emailing_id)
            if len(self._emailings) > _CACHE_LIMIT:
                self._emailings.clear()
            self._emailings[cache_key] = emailing
        return emailing, made

    def _forget(self, account_id: int, key: str) -> None:
        """Drop the cached emailing of a message that left nothing behind."""
        with self._lock:
            gone = self._emailings.pop((account_id, key), None)
            if gone is not None:
                self._links.pop(gone.id, None)
