"""Where bounce messages are read from on disk: single message files, mbox files and
Maildir folders, and standard input (`-`) for an MTA's pipe."""

from __future__ import annotations

import mailbox
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailstats.errors import InvalidParameter


@dataclass(frozen=True)
class Source:
    """One path given on the command line, and what it turned out to be."""

    path: str
    kind: str  # "stdin", "message", "mbox" or "maildir"

    def count(self) -> int:
        """How many messages it holds (for the progress bar)."""
        if self.kind == "mbox":
            box = _mbox(self.path)
            try:
                return len(box)
            finally:
                box.close()
        if self.kind == "maildir":
            return len(_maildir(self.path))
        return 1

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(a label that names the message, its bytes), one at a time."""
        if self.kind == "stdin":
            yield "<stdin>", sys.stdin.buffer.read()
        elif self.kind == "message":
            yield self.path, Path(self.path).read_bytes()
        elif self.kind == "mbox":
            box = _mbox(self.path)
            try:
                for number, key in enumerate(box.keys(), 1):
                    yield f"{self.path}#{number}", box.get_bytes(key)
            finally:
                box.close()
        else:
            folder = _maildir(self.path)
            for key in sorted(folder.keys()):
                yield f"{self.path}/{key}", folder.get_bytes(key)


def source(path: str) -> Source:
    """What a path is: `-`, a Maildir (a folder with cur/ and new/), an mbox (a file that
    starts with a `From ` line) or a single message."""
    if path == "-":
        return Source(path, "stdin")
    where = Path(path)
    if where.is_dir():
        if (where / "cur").is_dir() and (where / "new").is_dir():
            return Source(path, "maildir")
        raise InvalidParameter(f"{path}: a folder that is not a Maildir (no cur/ and new/)")
    if not where.is_file():
        raise InvalidParameter(f"{path}: no such file")
    with where.open("rb") as fh:
        head = fh.read(5)
    return Source(path, "mbox" if head == b"From " else "message")


def _mbox(path: str) -> mailbox.mbox:
    return mailbox.mbox(path, factory=None, create=False)


def _maildir(path: str) -> mailbox.Maildir:
    return mailbox.Maildir(path, factory=None, create=False)
