"""Running wrk with bench/clicks.lua and reading its summary."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "clicks.lua"


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    redirects: int  # responses with status 302
    errors: int  # socket errors, timeouts and statuses >= 400
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def run(url: str, paths: Path, seconds: int, connections: int, threads: int = 2,
        delay_ms: int = 0) -> Load:  # fmt: skip
    """GET `url` + each line of `paths` for `seconds` with `connections` open connections,
    each pausing `delay_ms` between its requests (0: none, as fast as answered)."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
               "--timeout", "5s", "-s", str(LUA), url]  # fmt: skip
    env = {**os.environ, "BENCH_PATHS": str(paths), "BENCH_DELAY_MS": str(delay_ms)}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            s = json.loads(line.removeprefix("BENCH_JSON "))
            return Load(
                s["requests"], s["duration_us"] / 1e6, s["redirects"], s["errors"],
                s["p50_us"] / 1e3, s["p99_us"] / 1e3, s["max_us"] / 1e3,
            )  # fmt: skip
    raise RuntimeError(f"wrk printed no summary: {done.stdout[-1000:]} {done.stderr[-1000:]}")
