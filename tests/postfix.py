"""A private Postfix instance for tests: its own configuration, queue and log folders and its
own loopback ports, with the relay as its after-queue content filter (FILTER_README's setup,
as docs/sending.md describes it) and a test SMTP server as the place it delivers to."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"

MASTER = """\
127.0.0.1:{inbound} inet n - n - - smtpd
127.0.0.1:{reinject} inet n - n - - smtpd
  -o content_filter=
  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o mynetworks=127.0.0.0/8
mailstats unix - - n - 8 smtp
  -o smtp_sasl_auth_enable=yes
  -o smtp_sasl_password_maps=static:acme:{token}
  -o smtp_sasl_security_options=noanonymous
  -o smtp_send_xforward_command=no
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

MAIN = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
maillog_file = {log}
maillog_file_prefixes = {folder}
myhostname = mx.test
mydomain = test
myorigin = shop.example
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{sink}
smtp_dns_support_level = disabled
content_filter = mailstats:[127.0.0.1]:{relay}
# one recipient per delivery to the relay: its answer is then that recipient's answer
mailstats_destination_recipient_limit = 1
smtputf8_enable = yes
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    return os.path.exists(POSTFIX) and os.geteuid() == 0


def need() -> None:
    """Skip without Postfix (scripts/test installs it); in CI its absence is a failure."""
    if available():
        return
    why = "Postfix is not installed (scripts/test installs it) or the tests do not run as root"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


class Postfix:
    """`with Postfix(relay_port, sink_port, token) as mta:` mail goes in at mta.port.

    Its folder is made under the system's temporary folder: Postfix's own user must reach
    it, which a test's private temporary folder does not let it.
    """

    def __init__(self, relay: int, sink: int, token: str) -> None:
        folder = Path(tempfile.mkdtemp(prefix="mailstats-postfix-"))
        folder.chmod(0o755)
        self.folder = folder
        self.etc = folder / "etc"
        self.queue = folder / "queue"
        self.data = folder / "data"
        self.log = folder / "maillog"
        self.port = free_port()
        self.reinject = free_port()
        self.values = {"relay": relay, "sink": sink, "token": token, "inbound": self.port,
                       "reinject": self.reinject, "queue": self.queue, "data": self.data,
                       "log": self.log, "folder": folder}  # fmt: skip

    def __enter__(self) -> Postfix:
        for folder in (self.etc, self.queue, self.data):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data, "postfix")
        (self.etc / "main.cf").write_text(MAIN.format(**self.values))
        (self.etc / "master.cf").write_text(MASTER.format(**self.values))
        self._register(add=True)
        try:
            self._postfix("set-permissions")
            self._postfix("start")
            deadline = time.monotonic() + 60
            while not self._listening():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Postfix did not start: {self.said()}")
                time.sleep(0.1)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            subprocess.run([POSTFIX, "-c", str(self.etc), "stop"], capture_output=True)
        finally:
            self._register(add=False)
            self.kept = self.said()
            shutil.rmtree(self.folder, ignore_errors=True)

    kept = ""

    def said(self) -> str:
        """What Postfix logged (kept after it stopped and its folder went)."""
        return self.log.read_text(errors="replace") if self.log.exists() else self.kept

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def _postfix(self, command: str) -> None:
        done = subprocess.run(
            [POSTFIX, "-c", str(self.etc), command], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"postfix {command}: {done.stderr or done.stdout}{self.said()}")

    def _register(self, *, add: bool) -> None:
        """The system's Postfix must list a private configuration folder before using it."""
        found = subprocess.run(
            [POSTCONF, "-h", "alternate_config_directories"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        listed = [d.strip(",") for d in found if d.strip(",") != str(self.etc)]
        if add:
            listed.append(str(self.etc))
        value = " ".join(listed)
        subprocess.run([POSTCONF, "-e", f"alternate_config_directories = {value}"], check=True)
