"""The state database's schema, as an ordered list of small migrations recorded in the database.

Each migration is a function taking a connection; its position in :data:`MIGRATIONS` (1-based) is its
version. :func:`migrate` applies the missing ones in order, each in its own transaction together with
its row in ``_migrations``, so an interrupted upgrade leaves the store at a well-defined version.
A database newer than this code (a later flux-batch wrote it) is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from flux_batch.errors import StateError


def _script(db: sqlite3.Connection, sql: str) -> None:
    # Statement by statement: executescript() would commit early and break the migration's atomicity.
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def m001_initial(db: sqlite3.Connection) -> None:
    """Jobs, their dependencies, create attempts (the write-ahead log of creates), outputs, uploads."""
    _script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            live INTEGER NOT NULL DEFAULT 1,
            stage TEXT NOT NULL,
            model TEXT NOT NULL,
            version TEXT,
            input TEXT NOT NULL,
            vars TEXT NOT NULL,
            needs TEXT NOT NULL,
            slug TEXT NOT NULL,
            cost_usd REAL,
            status TEXT NOT NULL DEFAULT 'pending',
            waiting INTEGER NOT NULL DEFAULT 0,
            prediction_id TEXT,
            seed INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            created_at TEXT,
            completed_at TEXT,
            predict_time REAL,
            finished_at REAL
        );
        CREATE INDEX jobs_runnable ON jobs(seq) WHERE status = 'pending' AND waiting = 0 AND live = 1;
        CREATE INDEX jobs_stage_status ON jobs(stage, status);
        CREATE INDEX jobs_seq ON jobs(seq);
        CREATE TABLE deps (
            needs_id TEXT NOT NULL,
            job_id TEXT NOT NULL,
            PRIMARY KEY (needs_id, job_id)
        ) WITHOUT ROWID;
        CREATE INDEX deps_job ON deps(job_id);
        CREATE TABLE attempts (
            job_id TEXT NOT NULL,
            n INTEGER NOT NULL,
            intent_at REAL NOT NULL,
            sent_input TEXT NOT NULL,
            prediction_id TEXT,
            outcome TEXT,
            PRIMARY KEY (job_id, n)
        );
        CREATE INDEX attempts_prediction ON attempts(prediction_id);
        CREATE TABLE outputs (
            job_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            url TEXT,
            url_until REAL,
            file_name TEXT,
            sha256 TEXT,
            bytes INTEGER,
            width INTEGER,
            height INTEGER,
            PRIMARY KEY (job_id, idx)
        );
        CREATE TABLE uploads (sha256 TEXT PRIMARY KEY, url TEXT NOT NULL, uploaded_at REAL NOT NULL);
        CREATE TABLE errors (at REAL NOT NULL, job_id TEXT, message TEXT NOT NULL);
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started_at REAL NOT NULL,
            finished_at REAL,
            summary TEXT
        );
        """,
    )


def m002_thumbnails(db: sqlite3.Connection) -> None:
    """Remember each output's thumbnail (made by the report package right after the download)."""
    db.execute("ALTER TABLE outputs ADD COLUMN thumb TEXT")


def m003_file_times(db: sqlite3.Connection) -> None:
    """Remember each output file's modification time: a resume compares size and time before it trusts
    the recorded sha256 (and hashes only a file that differs)."""
    db.execute("ALTER TABLE outputs ADD COLUMN mtime_ns INTEGER")


def m004_image_quality(db: sqlite3.Connection) -> None:
    """Remember each output's perceptual hash and bad-sample flags (:mod:`flux_batch.outputs.quality`),
    found when it is downloaded; outputs of older runs have none (an export computes them)."""
    db.execute("ALTER TABLE outputs ADD COLUMN phash TEXT")
    db.execute("ALTER TABLE outputs ADD COLUMN flags TEXT")


def m005_no_stage_status_index(db: sqlite3.Connection) -> None:
    """Drop the index of jobs by (stage, status): every status change of a job rewrote it (about 6 of the
    18 to 20 pages a job wrote to the log), and the only query it served, the counts by stage and status
    of the live jobs, read every job's row through it anyway (66 ms at 100,000 jobs; 55 ms scanning the
    table without it)."""
    db.execute("DROP INDEX IF EXISTS jobs_stage_status")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    m001_initial,
    m002_thumbnails,
    m003_file_times,
    m004_image_quality,
    m005_no_stage_status_index,
)


def current_version(db: sqlite3.Connection) -> int:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
    ).fetchone()
    if not exists:
        return 0
    row = db.execute("SELECT MAX(version) FROM _migrations").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite3.Connection, *, clock: Callable[[], float] = time.time) -> int:
    """Bring ``db`` (opened with ``isolation_level=None``) to the latest schema; return its version.

    StateError if the database is newer than this code.
    """
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at REAL)"
    )
    version = current_version(db)
    if version > len(MIGRATIONS):
        raise StateError(
            f"the state database is at schema version {version}, newer than this flux-batch understands "
            f"({len(MIGRATIONS)}); upgrade flux-batch to use this output folder"
        )
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            db.execute(
                "INSERT INTO _migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (number, step.__name__, clock()),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return len(MIGRATIONS)
