"""What the figures were measured on: CPU, memory and the versions of what took part."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from pathlib import Path


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def _version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def describe() -> dict[str, str]:
    return {
        "cpus": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "memory": f"{_memory_gib():.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": _version(["wrk", "-v"]),
        "nginx": _version(["nginx", "-v"]),
    }
