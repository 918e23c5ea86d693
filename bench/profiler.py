"""`--profile`: py-spy samples the redirect server under load; the hottest functions are kept.

An extra run, not a measured one (sampling slows the server down).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import wrk
from databases import DATA, Database
from scale import Scale
from servers import Mailstats

IDLE = {"Condition.wait threading.py", "Event.wait threading.py", "select selectors.py"}


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


def _frame(text: str) -> str:
    """`func (/path/to/module.py)` as `func module.py`."""
    name, _, where = text.partition(" (")
    return f"{name} {where.rstrip(')').rsplit('/', 1)[-1]}"


def summarise(raw: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function, from py-spy's collapsed stacks.

    Threads parked in a wait (idle thread-pool workers) are left out.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";")]
        n = int(count)
        if frames[-1] in IDLE:
            continue
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples", "self%  incl%  function"]
    for frame, n in own.most_common(top):
        lines.append(f"{100 * n / total:5.1f}  {100 * inclusive[frame] / total:5.1f}  {frame}")
    lines.append("-- inclusive --")
    for frame, n in inclusive.most_common(top):
        lines.append(f"{100 * n / total:5.1f}  {frame}")
    return "\n".join(lines)


def profile_redirect(db: Database, paths: Path, scale: Scale) -> Path | None:
    """Profile one worker under the redirect load; return the summary file."""
    spy = py_spy()
    if spy is None:
        return None
    raw = DATA / f"redirect-profile-{db.backend}.txt"
    with Mailstats(db, workers=1) as server:
        wrk.run(server.url, paths, scale.warmup_seconds, scale.connections)
        command = [spy, "record", "--pid", str(server.pid), "--duration", str(scale.wrk_seconds),
                   "--rate", "250", "--nolineno", "--format", "raw", "--output", str(raw)]  # fmt: skip
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        with subprocess.Popen(command, **quiet) as spy_proc:
            try:
                wrk.run(server.url, paths, scale.wrk_seconds, scale.connections)
                spy_proc.wait(timeout=scale.wrk_seconds + 30)
            finally:
                if spy_proc.poll() is None:
                    spy_proc.kill()
    summary = raw.with_name(f"redirect-profile-{db.backend}-summary.txt")
    summary.write_text(summarise(raw) + "\n")
    return summary
