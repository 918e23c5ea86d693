"""A real Dovecot IMAP server for tests: its own config folder, a self-signed certificate,
IMAPS and STARTTLS on loopback ports of its own, one user with a static password.

`scripts/test` installs Debian's dovecot-imapd when it is missing. Without it the tests
skip, except in CI (CI=true), where a server that cannot be had is a failure.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

USER, PASSWORD = "bounces", "s3cret-for-tests"


@dataclass(frozen=True)
class Dovecot:
    imaps_port: int
    imap_port: int  # plain port, STARTTLS only (plain logins are refused)
    ca_file: str
    user: str = USER
    password: str = PASSWORD


def _binary() -> str:
    found = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists(
        "/usr/sbin/dovecot") else None)  # fmt: skip
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed (scripts/test installs dovecot-imapd)")
        pytest.skip("dovecot is not installed (scripts/test installs dovecot-imapd)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        ), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ))  # fmt: skip
    key_path.chmod(0o600)
    return cert_path, key_path


def _config(folder: Path, imaps: int, imap: int, cert: Path, key: Path, extra: str) -> Path:
    root = os.geteuid() == 0
    me = getpass.getuser()
    mail_user = "dovecot" if root else me
    home = folder / "home"
    home.mkdir()
    if root:
        shutil.chown(home, "dovecot", "dovecot")
    text = f"""
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain
disable_plaintext_auth = yes
default_internal_user = {"dovecot" if root else me}
default_internal_group = {"dovecot" if root else me}
default_login_user = {"dovenull" if root else me}
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_user} home={home}/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
{extra}
"""
    path = folder / "dovecot.conf"
    path.write_text(text)
    return path


def _ready(port: int, ca_file: str, deadline: float) -> bool:
    context = ssl.create_default_context(cafile=ca_file)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:  # fmt: skip
                if tls.recv(100).startswith(b"* OK"):
                    return True
        except OSError:
            time.sleep(0.1)
    return False


@contextmanager
def dovecot_server(extra: str = "") -> Iterator[Dovecot]:
    """A running server; `extra` is more configuration (say, fewer capabilities)."""
    binary = _binary()
    # A short folder: Dovecot's sockets live in base_dir, and socket paths are short.
    folder = Path(tempfile.mkdtemp(prefix="dv"))
    folder.chmod(0o755)
    cert, key = _certificate(folder)
    imaps, imap = _free_port(), _free_port()
    config = _config(folder, imaps, imap, cert, key, extra)
    errors = (folder / "stderr.log").open("wb")
    proc = subprocess.Popen([binary, "-F", "-c", str(config)], stdout=subprocess.DEVNULL,
                            stderr=errors)  # fmt: skip
    try:
        if not _ready(imaps, str(cert), time.monotonic() + 30):
            proc.terminate()
            proc.wait(timeout=10)
            logs = [folder / "stderr.log", folder / "dovecot.log"]
            said = " ".join(p.read_text(errors="replace") for p in logs if p.exists())
            message = f"dovecot did not start: {said}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        yield Dovecot(imaps, imap, str(cert))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errors.close()
        shutil.rmtree(folder, ignore_errors=True)
