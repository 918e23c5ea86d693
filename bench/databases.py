"""Scratch databases for a run: a file under bench/data/, or the `mailstats_bench` database."""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import psycopg

from mailstats.store import Store

# BENCH_DATA and BENCH_PG_DATABASE let two runs on one machine keep out of each other's way
DATA = Path(os.environ.get("BENCH_DATA") or Path(__file__).resolve().parent / "data")
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
PG_DATABASE = os.environ.get("BENCH_PG_DATABASE", "mailstats_bench")


@dataclass(frozen=True)
class Database:
    backend: str  # "sqlite" or "postgres"
    url: str  # what `mailstats serve --db` takes
    scale: str

    @property
    def spool(self) -> Path:
        return DATA / f"{self.backend}.spool"

    def create(self) -> None:
        """Make an empty database, removing what an earlier run left."""
        self.drop()
        DATA.mkdir(parents=True, exist_ok=True)
        if self.backend == "postgres":
            _pg_admin(f"CREATE DATABASE {PG_DATABASE}")

    @property
    def meta(self) -> Path:
        """What was built into the database (dataset.DataSet.save)."""
        return DATA / f"{self.backend}-{self.scale}.json"

    def exists(self) -> bool:
        if self.backend == "sqlite":
            return Path(self.url).exists()
        try:
            psycopg.connect(self.url, connect_timeout=5).close()
        except psycopg.Error:
            return False
        return True

    def drop(self) -> None:
        for meta in DATA.glob(f"{self.backend}-*.json"):  # one PostgreSQL database for all
            meta.unlink()
        shutil.rmtree(self.spool, ignore_errors=True)
        if self.backend == "postgres":
            _pg_admin(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
            return
        for suffix in ("", "-wal", "-shm"):
            Path(self.url + suffix).unlink(missing_ok=True)


def database(backend: str, scale: str) -> Database:
    if backend == "postgres":
        return Database(backend, f"{PG_SERVER}/{PG_DATABASE}", scale)
    return Database(backend, str(DATA / f"{scale}.db"), scale)


def _pg_admin(sql: str) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def postgres_available() -> str | None:
    """None when the server answers, else why not."""
    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip()
    return None


def settle(store: Store) -> None:
    """After the bulk load: what a running system would have done by itself by now.

    PostgreSQL: VACUUM ANALYZE (autovacuum would, after so many inserts). SQLite: fold the
    WAL back into the database file; mailstats runs no ANALYZE, so neither does this.
    """
    if store.dialect == "postgres":
        with store.backend.pool.connection() as conn:  # type: ignore[attr-defined]
            conn.execute("VACUUM ANALYZE")
        return
    conn = sqlite3.connect(store.backend.path)  # type: ignore[attr-defined]
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def versions(store: Store) -> dict[str, str]:
    if store.dialect == "postgres":
        names = ("server_version", "shared_buffers", "synchronous_commit", "fsync")
        return {n: str(store.backend.fetch(f"SHOW {n}")[0][0]) for n in names}
    return {"sqlite": sqlite3.sqlite_version, "synchronous": "FULL", "journal_mode": "WAL"}
