"""The crash-safe store of a run: SQLite in WAL mode in ``<out>/state.db``.

Write-ahead discipline lives here as the only way to change a job:

1. :meth:`Store.begin_attempt` records the intent (the exact input about to be sent) *before* a create;
2. :meth:`Store.attach` records the prediction id as soon as the create's response arrives;
3. :meth:`Store.record_terminal` records the prediction's end (and its output URLs); a create answered
   once its prediction had ended records 2 and 3 together (its ``answer``);
4. :meth:`Store.record_download` records a file only once it is safely in place.

Every write is its own short transaction, so a crash at any point leaves a state from which a resume knows
exactly what to do. Commits are synchronous=NORMAL (in WAL mode they survive a killed process, as the WAL is
in the operating system's hands), except the intent's, which is fsynced before the create is sent (a FULL
commit, or the runner's group commit of the write-ahead log: :meth:`Store.sync_wal`), so
that even a power cut cannot lose the record of a prediction that may have been made (and then pay for it
twice). Then: a job ``submitting`` may have a prediction (reconcile before creating again), a job with a
prediction id is re-attached, a job ``downloading`` fetches its missing files.

Job statuses: ``pending``, ``submitting`` (intent recorded, no id yet), ``submitted``, ``running``,
``downloading`` (prediction succeeded, files not all here), then terminal ``succeeded``, ``failed``,
``canceled``, ``aborted``, ``expired`` (output gone before download) or ``skipped`` (an upstream failed);
and ``download_failed``: the prediction succeeded (and was paid) and its output is still there, but it
could not be downloaded in this run; the next run downloads it again, creating nothing.

Nothing read back is trusted: a SQLite failure leaves as :class:`~flux_batch.errors.DiskFullError` or
:class:`~flux_batch.errors.StorageError` (the run stops, resumable) or :class:`~flux_batch.errors.StateError`
(the database is damaged), a row that does not decode (bad JSON, an unusable prediction id) as a
StateError. The store reads no files (runner.download checks the folder's files against it)
and answers no questions beyond a run's own (those are :mod:`flux_batch.runner.state.queries`'). A new
folder's database is built under a temporary name and renamed into place, so a disk that fills during the
first setup never leaves a half-written ``state.db`` that every later run would refuse.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import operator
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

from flux_batch.errors import DiskFullError, FluxBatchError, StateError, StorageError, storage_error
from flux_batch.jobs import Job
from flux_batch.jobs.ids import canonical_json, derive_seed
from flux_batch.jobs.status import FAILED, IN_PROGRESS, JobStatus, fold_counts
from flux_batch.runner.prediction_id import valid_id
from flux_batch.runner.state import queries
from flux_batch.runner.state.migrations import migrate

STATE_FILE = "state.db"
#: The statuses as SQL parameters, in a fixed order.
_FAILED = tuple(sorted(FAILED))
_IN_PROGRESS = tuple(sorted(IN_PROGRESS))

_JOB_COLUMNS = (
    "id, seq, stage, model, version, input, vars, needs, slug, cost_usd, status, prediction_id, seed, "
    "attempts, error, created_at, completed_at, predict_time"
)
_JOB_FIELDS = tuple(name.strip() for name in _JOB_COLUMNS.split(","))


@dataclass(frozen=True)
class JobRow:
    """A job and where it stands. ``seed`` is the seed actually sent (it differs after a reseed)."""

    job: Job
    seq: int
    cost_usd: float | None
    status: str
    prediction_id: str | None
    seed: int | None
    attempts: int
    error: str | None
    created_at: str | None
    completed_at: str | None
    predict_time: float | None

    @property
    def id(self) -> str:
        return self.job.id

    def send_input(self) -> dict[str, Any]:
        """The job's input with the seed to send (image references not yet resolved)."""
        data = dict(self.job.input)
        if self.seed is not None:
            data["seed"] = self.seed
        return data


class Attempt(NamedTuple):
    """One create of a job: its number, when its intent was recorded, the input sent (JSON), then the
    prediction id once the create was answered and the outcome once known (None: not yet)."""

    n: int
    intent_at: float
    sent_input: str
    prediction_id: str | None
    outcome: str | None


@dataclass(frozen=True)
class OutputRow:
    job_id: str
    idx: int
    url: str | None
    url_until: float | None
    file_name: str | None
    sha256: str | None
    bytes: int | None
    width: int | None
    height: int | None
    thumb: str | None
    mtime_ns: int | None = None
    phash: str | None = None
    flags: str | None = None


_OUTPUT_COLUMNS = (
    "job_id, idx, url, url_until, file_name, sha256, bytes, width, height, thumb, mtime_ns, phash, flags"
)


@dataclass(frozen=True)
class FileInfo:
    """A downloaded file: ``file_name`` relative to the output folder; ``mtime_ns`` its modification time
    once in place (with the size, what a resume compares before it trusts the recorded sha256)."""

    file_name: str
    sha256: str
    bytes: int
    width: int
    height: int
    mtime_ns: int | None = None
    #: The image's perceptual hash and its flags (``blank``, ``undecodable``), see flux_batch.outputs.quality;
    #: flags None: not known yet (made after the download, see flux_batch.runner.image_work).
    phash: str | None = None
    flags: str | None = None


# SQLite's primary result codes (https://sqlite.org/rescode.html) that say what went wrong.
_SQLITE_ERROR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 1, 11, 13, 26
_DAMAGED_WORDS = ("malformed", "not a database", "no such table", "no such column", "corrupt")


def state_error(exc: sqlite3.Error, path: Path) -> FluxBatchError:
    """The flux-batch error for a SQLite failure on the state at ``path``."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(exc)
    if code == _SQLITE_FULL or "database or disk is full" in text:
        return DiskFullError(
            f"{path}: no space left to record the run's state ({text}); free some space and run again: "
            "everything finished so far is kept"
        )
    if code in (_SQLITE_ERROR, _SQLITE_CORRUPT, _SQLITE_NOTADB) or any(w in text for w in _DAMAGED_WORDS):
        return damaged(path, text)
    return StorageError(f"{path}: the state database failed ({text}); fix that and run again to resume")


def damaged(path: Path, what: str) -> StateError:
    return StateError(
        f"{path} is damaged ({what}); restore it from a backup, or move it away to start afresh (the images "
        "in the folder stay, but their jobs would be created again)"
    )


T = TypeVar("T")


def _translating(cls: type[T]) -> type[T]:
    """Wrap every public method of ``cls`` (generators included) so that a SQLite failure leaves it as a
    flux-batch error (see :func:`state_error`)."""

    def wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(method):

            @functools.wraps(method)
            def gen(self: Any, *args: Any, **kw: Any) -> Any:
                try:
                    yield from method(self, *args, **kw)
                except sqlite3.Error as exc:
                    raise state_error(exc, self.path) from exc

            return gen

        @functools.wraps(method)
        def call(self: Any, *args: Any, **kw: Any) -> Any:
            try:
                return method(self, *args, **kw)
            except sqlite3.Error as exc:
                raise state_error(exc, self.path) from exc

        return call

    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(value):
            setattr(cls, name, wrap(name, value))
    return cls


def _decoded(text: Any, kind: type, job_id: str, column: str) -> Any:
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        value = None
    if not isinstance(value, kind):
        raise StateError(
            f"job {job_id}: its {column} in the state database is not a JSON {kind.__name__}; the state is "
            "damaged: restore it from a backup, or move it away to start afresh"
        )
    return value


def _row_to_job(r: sqlite3.Row | tuple[Any, ...]) -> JobRow:
    """A ``jobs`` row read with :data:`_JOB_COLUMNS`, by column name; every stored value is checked."""
    c = dict(zip(_JOB_FIELDS, r, strict=True))
    job_id = str(c["id"])
    needs = _decoded(c["needs"], list, job_id, "needs")
    job = Job(
        id=job_id,
        stage=c["stage"],
        model=c["model"],
        version=c["version"],
        input=_decoded(c["input"], dict, job_id, "input"),
        vars=_decoded(c["vars"], dict, job_id, "vars"),
        needs=tuple(str(n) for n in needs),
        slug=c["slug"],
    )
    prediction_id = c["prediction_id"]
    if prediction_id is not None and valid_id(prediction_id) is None:
        shown = str(prediction_id)[:40]
        raise StateError(
            f"job {job_id}: its prediction id in the state database is not one ({shown!r}); the state is "
            "damaged: restore it from a backup, or move it away to start afresh"
        )
    return JobRow(
        job,
        seq=c["seq"],
        cost_usd=c["cost_usd"],
        status=c["status"],
        prediction_id=prediction_id,
        seed=c["seed"],
        attempts=c["attempts"],
        error=c["error"],
        created_at=c["created_at"],
        completed_at=c["completed_at"],
        predict_time=c["predict_time"],
    )


def connect(
    path: Path, *, readonly: bool = False, immutable: bool = False, any_thread: bool = False
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, with a busy timeout.

    ``immutable`` (read-only) reads the file as it is, with no locks and no ``-wal``/``-shm`` files made:
    only for a database that no connection has open (see :func:`open_readonly`). ``any_thread``: used from
    more than one thread, never two at once."""
    try:
        if readonly:
            uri = f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")
            db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0)
        else:
            db = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=not any_thread)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: every commit survives a killed process (the WAL is in the OS); a power
            # failure could lose the last commits, which a resume redoes at no cost, except a create's
            # intent: that one commit is FULL (Store.begin_attempt).
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=OFF")
        return db
    except sqlite3.Error as exc:
        raise state_error(exc, path) from exc


def _create(path: Path, clock: Callable[[], float]) -> None:
    """Build a new state database under a temporary name and rename it to ``path`` once complete."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    leftovers = [*path.parent.glob(f".{path.name}.*.new*")]
    try:
        for old in leftovers:  # a first setup that an earlier process never finished
            old.unlink(missing_ok=True)
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            # No fsync per migration's commit: a file cut short here is a leftover the next setup deletes,
            # never the state, and the whole file is fsynced once below before it is renamed into place.
            # A new folder's setup took 115-150 ms for those fsyncs on a busy disk, 20-45 ms without them.
            db.execute("PRAGMA synchronous=OFF")
            migrate(db, clock=clock)
            db.execute("PRAGMA journal_mode=WAL")  # atomic, in the file's header: readers see it at once
        finally:
            db.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except sqlite3.Error as exc:
        raise state_error(exc, path) from exc
    except OSError as exc:
        raise storage_error(exc, f"creating {path}") from exc
    finally:
        for name in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            with suppress(OSError):
                name.unlink(missing_ok=True)


#: SQLite's default: a committing connection checkpoints the write-ahead log past this many pages.
_AUTOCHECKPOINT_PAGES = 1000


class _LogCheckpointer:
    """Copies the write-ahead log into the database (see :meth:`Store.log_checkpoints_elsewhere`)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None
        self.checkpoints = 0

    def __repr__(self) -> str:
        return f"<_LogCheckpointer {self._path} checkpoints={self.checkpoints}>"

    def __call__(self) -> None:
        try:
            if self._db is None:
                self._db = connect(self._path, any_thread=True)
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            raise state_error(exc, self._path) from exc
        self.checkpoints += 1

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


@_translating
class Store:
    """The state of one output folder. Open with :meth:`open`; not shared between threads."""

    def __init__(self, db: sqlite3.Connection, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.path = path
        self._clock = clock
        self._var_names: dict[str, None] = {}
        self._input_names: dict[str, None] = {}
        self._seq = 0
        self._loading = False  # jobs are being (re)loaded in this session: see begin_ingest

    @classmethod
    def open(cls, out_dir: Path, *, clock: Callable[[], float] = time.time) -> Store:
        """The folder's store (made if there is none): StateError if it is damaged, StorageError (or
        DiskFullError) if it cannot be written."""
        path = out_dir / STATE_FILE
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            fresh = not path.exists()
        except OSError as exc:
            raise storage_error(exc, f"the output folder {out_dir}") from exc
        if fresh:
            _create(path, clock)
        db = connect(path)
        try:
            migrate(db, clock=clock)
        except sqlite3.Error as exc:
            db.close()
            raise state_error(exc, path) from exc
        except StateError:
            db.close()
            raise
        return cls(db, path, clock=clock)

    @classmethod
    def reader(cls, out_dir: Path) -> Store:
        """A read-only view of a folder's state on its own connection, for another thread or process
        (WAL: it reads beside the writer without blocking it). Use :meth:`snapshot` for a consistent read."""
        path = Path(out_dir) / STATE_FILE
        return cls(connect(path, readonly=True), path)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees the state as of its first read: one transaction."""
        try:
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise state_error(exc, self.path) from exc
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    @contextmanager
    def _tx(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction; ``durable`` fsyncs its commit before returning (once per create)."""
        if durable:
            self._db.execute("PRAGMA synchronous=FULL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        finally:
            if durable:
                self._db.execute("PRAGMA synchronous=NORMAL")

    # -- meta -------------------------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if not row:
            return default
        try:
            return json.loads(row[0])
        except (TypeError, ValueError, RecursionError):
            raise damaged(self.path, f"the meta value {key!r} is not JSON") from None

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # -- loading the manifest's jobs -------------------------------------------------------------------

    def begin_ingest(self) -> None:
        """Start loading the current manifest's jobs: until they are added again, none is live (and the
        fingerprint of the last complete load no longer holds)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET live = 0 WHERE live = 1")
            db.execute("DELETE FROM meta WHERE key = 'ingested'")
        self._var_names.clear()
        self._input_names.clear()
        self._seq = 0
        self._loading = True

    def finish_ingest(self, fingerprint: str) -> None:
        """Every job of the manifest with this fingerprint is loaded (:mod:`flux_batch.jobs.fingerprint`)."""
        self.set_meta("ingested", fingerprint)

    def ingested(self) -> str | None:
        """The fingerprint of the manifest whose jobs the state holds as live, if its load completed."""
        value = self.get_meta("ingested")
        return value if isinstance(value, str) else None

    def live_in_order(self, jobs: Iterable[Job]) -> bool:
        """Whether these jobs are live in the state, at these places in manifest order (1, 2, ...)."""
        for seq, job in enumerate(jobs, start=1):
            row = self._db.execute("SELECT seq, live FROM jobs WHERE id = ?", (job.id,)).fetchone()
            if row is None or tuple(row) != (seq, 1):
                return False
        return True

    def add_jobs(self, jobs: Iterable[tuple[Job, float | None]]) -> None:
        """Add (or mark live again) a batch of ``(job, estimated cost)``, in manifest order."""
        job_rows: list[tuple[Any, ...]] = []
        dep_rows: list[tuple[str, str]] = []
        for job, cost in jobs:
            self._seq += 1
            for name in job.vars:
                self._var_names.setdefault(name, None)
            for name in job.input:
                if name not in ("prompt", "seed"):
                    self._input_names.setdefault(name, None)
            job_rows.append(
                (
                    job.id,
                    self._seq,
                    job.stage,
                    job.model,
                    job.version,
                    canonical_json(job.input),
                    json.dumps(dict(job.vars), ensure_ascii=False),
                    json.dumps(list(job.needs)),
                    job.slug,
                    cost,
                    job.seed,
                    len(job.needs),
                )
            )
            dep_rows.extend((need, job.id) for need in job.needs)
        with self._tx() as db:
            db.executemany(
                "INSERT INTO jobs (id, seq, stage, model, version, input, vars, needs, slug, cost_usd,"
                " seed, waiting)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET live = 1, seq = excluded.seq, cost_usd = excluded.cost_usd,"
                " vars = excluded.vars, slug = excluded.slug",
                job_rows,
            )
            db.executemany("INSERT OR IGNORE INTO deps (needs_id, job_id) VALUES (?, ?)", dep_rows)

    def prepare_run(self, *, retry_failed: bool = False, reseed: bool = False) -> None:
        """After loading: decide what this run will do with jobs from earlier runs.

        Jobs whose output is gone (``expired``) are redone; with ``retry_failed`` so are failed, canceled
        and aborted ones (with ``reseed`` under a new seed derived from the old one and the attempt);
        ``download_failed`` ones go back to ``downloading`` (their prediction is kept: nothing is created);
        ``skipped`` jobs are reconsidered; then each pending job's count of unfinished upstream jobs is
        recomputed, and jobs whose upstream has definitively failed are skipped.
        """
        with self._tx() as db:
            if self._loading:  # a load that was skipped keeps the columns of the last one
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('columns', ?)",
                    (json.dumps({"vars": list(self._var_names), "inputs": list(self._input_names)}),),
                )
            revive = [JobStatus.EXPIRED, JobStatus.SKIPPED, *(_FAILED if retry_failed else ())]
            marks = ",".join("?" * len(revive))
            if reseed and retry_failed:
                rows = db.execute(
                    "SELECT id, stage, seed, attempts FROM jobs WHERE live = 1 AND status IN"
                    f" ({','.join('?' * len(_FAILED))})",
                    _FAILED,
                ).fetchall()
                db.executemany(
                    "UPDATE jobs SET seed = ? WHERE id = ?",
                    [
                        (derive_seed(seed or 0, stage, {"retry": attempts}), jid)
                        for jid, stage, seed, attempts in rows
                    ],
                )
            db.execute(
                f"UPDATE jobs SET status = 'pending', prediction_id = NULL, error = NULL WHERE live = 1"
                f" AND status IN ({marks})",
                revive,
            )
            db.execute(
                "UPDATE jobs SET status = 'downloading', finished_at = NULL WHERE live = 1 AND status = ?",
                (JobStatus.DOWNLOAD_FAILED,),
            )
            db.execute(
                "UPDATE jobs SET waiting = (SELECT COUNT(*) FROM deps d JOIN jobs u ON u.id = d.needs_id"
                " WHERE d.job_id = jobs.id AND u.status != 'succeeded') WHERE status = 'pending' AND live = 1"
            )
            while True:
                changed = db.execute(
                    "UPDATE jobs SET status = 'skipped', error = 'an upstream job did not succeed'"
                    " WHERE status = 'pending' AND waiting > 0 AND EXISTS (SELECT 1 FROM deps d JOIN jobs u"
                    " ON u.id = d.needs_id WHERE d.job_id = jobs.id AND (u.status IN"
                    " ('failed', 'canceled', 'aborted', 'expired', 'skipped') OR u.live = 0))"
                ).rowcount
                if not changed:
                    break

    # -- reading ----------------------------------------------------------------------------------------

    def job(self, job_id: str) -> JobRow:
        row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise StateError(f"job {job_id} is not in the state database")
        return _row_to_job(row)

    def runnable(self, limit: int, after_seq: int = 0) -> list[JobRow]:
        """Pending live jobs whose upstream jobs have all succeeded, in manifest order after ``after_seq``."""
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status = 'pending' AND waiting = 0 AND live = 1 AND seq"
            " > ?"
            " ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [_row_to_job(r) for r in rows]

    def runnable_job(self, job_id: str) -> JobRow | None:
        """The job if it is pending, live and every upstream job has succeeded; else None."""
        row = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ? AND status = 'pending' AND waiting = 0"
            " AND live = 1",
            (job_id,),
        ).fetchone()
        return _row_to_job(row) if row else None

    def in_progress(self) -> list[JobRow]:
        """Jobs an earlier run left between intent and download, to resume first."""
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE live = 1 AND status IN (?, ?, ?, ?) ORDER BY seq",
            _IN_PROGRESS,
        ).fetchall()
        return [_row_to_job(r) for r in rows]

    def iter_jobs(self, *, live_only: bool = True, batch: int = 2000) -> Iterator[JobRow]:
        """Every (live) job in manifest order, fetched in batches."""
        last = -1
        where = "live = 1 AND " if live_only else ""
        while True:
            rows = self._db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where}seq > ? ORDER BY seq LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            for r in rows:
                yield _row_to_job(r)
            last = rows[-1][1]

    def outputs(self, job_id: str) -> list[OutputRow]:
        rows = self._db.execute(
            f"SELECT {_OUTPUT_COLUMNS} FROM outputs WHERE job_id = ? ORDER BY idx",
            (job_id,),
        ).fetchall()
        return [OutputRow(*r) for r in rows]

    def outputs_of(self, job_ids: Iterable[str]) -> dict[str, list[OutputRow]]:
        """The outputs of each of ``job_ids`` (asked once each, however often an id is repeated)."""
        unique = list(dict.fromkeys(job_ids))
        found: dict[str, list[OutputRow]] = {}
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = self._db.execute(
                f"SELECT {_OUTPUT_COLUMNS} FROM outputs"
                f" WHERE job_id IN ({','.join('?' * len(chunk))}) ORDER BY job_id, idx",
                chunk,
            ).fetchall()
            for r in rows:
                found.setdefault(r[0], []).append(OutputRow(*r))
        return found

    def attempts(self, job_id: str) -> list[Attempt]:
        """Each create of the job, oldest first."""
        rows = self._db.execute(
            "SELECT n, intent_at, sent_input, prediction_id, outcome FROM attempts WHERE job_id = ? ORDER"
            " BY n",
            (job_id,),
        ).fetchall()
        return [Attempt(*row) for row in rows]

    def paid_before(self, job_id: str) -> bool:
        """Whether one of the job's predictions already succeeded (and was paid for)."""
        row = self._db.execute(
            "SELECT 1 FROM attempts WHERE job_id = ? AND outcome = 'succeeded' LIMIT 1", (job_id,)
        ).fetchone()
        return row is not None

    def known_prediction(self, prediction_id: str) -> bool:
        return bool(
            self._db.execute("SELECT 1 FROM attempts WHERE prediction_id = ?", (prediction_id,)).fetchone()
        )

    def models(self) -> list[str]:
        """The models of the live jobs."""
        rows = self._db.execute("SELECT DISTINCT model FROM jobs WHERE live = 1 ORDER BY model")
        return [m for (m,) in rows]

    def unsharded_files(self) -> list[tuple[str, int, str, int, str]]:
        """``(job id, output index, stage, seq, file_name)`` of every downloaded output (of live jobs and
        others) whose path is not three folders deep (``images/<stage>/<shard>/<file>``): the files of
        folders made by versions before the sharded layout."""
        return self._db.execute(
            "SELECT o.job_id, o.idx, j.stage, j.seq, o.file_name FROM outputs o"
            " JOIN jobs j ON j.id = o.job_id WHERE o.file_name IS NOT NULL"
            " AND LENGTH(o.file_name) - LENGTH(REPLACE(o.file_name, '/', '')) != 3 ORDER BY j.seq, o.idx"
        ).fetchall()

    def counts(self) -> dict[str, dict[str, int]]:
        """Live jobs by stage and (internal) status."""
        return queries.counts(self._db)

    def spent_usd(self) -> float:
        """Estimated spend so far: every prediction that succeeded, at its job's price (all runs)."""
        return queries.spent_usd(self._db)

    def upload_for(self, sha256: str, newer_than: float) -> str | None:
        row = self._db.execute(
            "SELECT url FROM uploads WHERE sha256 = ? AND uploaded_at > ?", (sha256, newer_than)
        ).fetchone()
        return row[0] if row else None

    def recent_errors(self, limit: int = 10) -> list[tuple[float, str | None, str]]:
        return self._db.execute(
            "SELECT at, job_id, message FROM errors ORDER BY at DESC LIMIT ?", (limit,)
        ).fetchall()

    # -- writing (each call one transaction) ----------------------------------------------------------------

    def begin_attempt(
        self, job_id: str, sent_input: Mapping[str, Any], intent_at: float, *, durable: bool = True
    ) -> int:
        """Record the intent to create a prediction with exactly ``sent_input``; return the attempt number.
        Durable (fsynced) before it returns: the create is sent next. With ``durable`` False the caller
        makes it durable before sending, by :meth:`sync_wal` (the runner shares one fsync among the intents
        committed meanwhile, in a worker thread: :mod:`flux_batch.runner.state.group_sync`)."""
        with self._tx(durable=durable) as db:
            (n,) = db.execute("SELECT attempts + 1 FROM jobs WHERE id = ?", (job_id,)).fetchone()
            db.execute(
                "INSERT INTO attempts (job_id, n, intent_at, sent_input) VALUES (?, ?, ?, ?)",
                (job_id, n, intent_at, canonical_json(sent_input)),
            )
            db.execute(
                "UPDATE jobs SET status = 'submitting', attempts = ?, prediction_id = NULL, error = NULL"
                " WHERE id = ?",
                (n, job_id),
            )
        return int(n)

    @contextmanager
    def log_checkpoints_elsewhere(self) -> Iterator[Callable[[], None]]:
        """Inside, this connection never copies its write-ahead log into the database: the function
        yielded does (a PASSIVE checkpoint, on a connection of its own, from any one thread at a time).

        SQLite checkpoints in the committing connection once the log passes 1,000 pages (about 4 MB): at
        6,000 creates a minute that is every second or so, and its copy and the database's fsync held the
        runner's event loop for up to 4 s on a busy disk (docs/benchmarks.md, "The runner's loop stalls,
        traced"). A PASSIVE checkpoint takes no lock a writer waits for, and the log is written again from
        its start once it has all been copied; the caller calls the function often enough to keep it small.
        Durability is unchanged: the checkpoint fsyncs the log before it copies and the database after."""
        checkpointer = _LogCheckpointer(self.path)
        self._autocheckpoint(0)
        try:
            yield checkpointer
        finally:
            checkpointer.close()
            self._autocheckpoint(_AUTOCHECKPOINT_PAGES)

    def _autocheckpoint(self, pages: int) -> None:
        try:
            self._db.execute(f"PRAGMA wal_autocheckpoint={pages}")
        except sqlite3.Error as exc:
            raise state_error(exc, self.path) from exc

    def sync_wal(self) -> None:
        """fsync the write-ahead log: every commit made before this call is then durable, as a FULL commit
        would have made it. Safe from any thread (it touches no connection)."""
        try:
            try:
                fd = os.open(f"{self.path}-wal", os.O_RDONLY)
            except FileNotFoundError:  # no log: commits went to the database file itself
                fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise storage_error(exc, f"syncing {self.path}") from exc

    def abandon_attempt(self, job_id: str, outcome: str) -> None:
        """The last create certainly made nothing (a 429, a 422, a connection never made): say so."""
        with self._tx() as db:
            db.execute(
                "UPDATE attempts SET outcome = ? WHERE job_id = ? AND n = (SELECT attempts FROM jobs WHERE"
                " id = ?)",
                (outcome, job_id, job_id),
            )

    def attach(self, job_id: str, prediction_id: str, status: str, created_at: str | None) -> None:
        """Record the prediction a create (or a reconciliation) gave the job's current attempt."""
        public = "running" if status == "processing" else "submitted"
        with self._tx() as db:
            db.execute(
                "UPDATE attempts SET prediction_id = ? WHERE job_id = ? AND n = (SELECT attempts FROM jobs"
                " WHERE id = ?)",
                (prediction_id, job_id, job_id),
            )
            db.execute(
                "UPDATE jobs SET prediction_id = ?, status = ?, created_at = ? WHERE id = ?",
                (prediction_id, public, created_at, job_id),
            )

    def mark_running(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET status = 'running' WHERE id = ? AND status = 'submitted'", (job_id,))

    def record_terminal(
        self,
        job_id: str,
        *,
        status: str,
        error: str | None,
        urls: tuple[str, ...],
        url_until: float,
        completed_at: str | None,
        predict_time: float | None,
        cost_usd: float | None = None,
        answer: tuple[str, str | None] | None = None,
    ) -> dict[str, int]:
        """The job's prediction ended. On success the job moves to ``downloading`` with its output URLs;
        otherwise its downstream jobs are skipped (returned: how many, by stage). ``cost_usd``: what the
        API billed, replacing the estimate. ``answer``: the prediction (its id and ``created_at``) is the
        create's answer, given once it had ended (``Prefer: wait``): :meth:`attach` and this in one
        transaction, which writes the attempt's row and the job's once each."""
        also: dict[str, Any] = {}
        with self._tx() as db:
            if answer is None:
                db.execute(
                    "UPDATE attempts SET outcome = ? WHERE job_id = ? AND prediction_id = (SELECT"
                    " prediction_id FROM jobs WHERE id = ?)",
                    (status, job_id, job_id),
                )
            else:
                also = {"prediction_id": answer[0], "created_at": answer[1]}
                db.execute(
                    "UPDATE attempts SET prediction_id = ?, outcome = ? WHERE job_id = ? AND n = (SELECT"
                    " attempts FROM jobs WHERE id = ?)",
                    (answer[0], status, job_id, job_id),
                )
            columns = "".join(f"{name} = ?, " for name in also)
            if status == "succeeded":
                db.execute("DELETE FROM outputs WHERE job_id = ?", (job_id,))
                db.executemany(
                    "INSERT INTO outputs (job_id, idx, url, url_until) VALUES (?, ?, ?, ?)",
                    [(job_id, i, url, url_until) for i, url in enumerate(urls)],
                )
                db.execute(
                    f"UPDATE jobs SET {columns}status = 'downloading', completed_at = ?, predict_time = ?,"
                    " error = NULL, cost_usd = COALESCE(?, cost_usd) WHERE id = ?",
                    (*also.values(), completed_at, predict_time, cost_usd, job_id),
                )
            else:
                db.execute(
                    f"UPDATE jobs SET {columns}status = ?, error = ?, completed_at = ?, predict_time = ?,"
                    " finished_at = ? WHERE id = ?",
                    (*also.values(), status, error, completed_at, predict_time, self._clock(), job_id),
                )
                return self._skip_dependents(db, job_id)
        return {}

    def record_download(
        self, job_id: str, idx: int, info: FileInfo, *, last: bool = False
    ) -> list[str] | None:
        """Record a file safely on disk. With ``last`` (every other output of the job is on disk), the job
        succeeds in the same transaction: returns the downstream jobs that made runnable, as
        :meth:`mark_succeeded` does (None without ``last``)."""
        values = (
            *(info.file_name, info.sha256, info.bytes, info.width, info.height, None, info.mtime_ns),
            *(info.phash, info.flags),
        )
        with self._tx() as db:
            db.execute(
                "UPDATE outputs SET file_name = ?, sha256 = ?, bytes = ?, width = ?, height = ?, thumb = ?,"
                " mtime_ns = ?, phash = ?, flags = ? WHERE job_id = ? AND idx = ?",
                (*values, job_id, idx),
            )
            return self._succeeded(db, job_id) if last else None

    def unknown_quality(self) -> list[tuple[str, int, str, str]]:
        """``(job id, output index, file_name, sha256)`` of every downloaded image whose quality values are
        not recorded yet (:mod:`flux_batch.runner.image_work`)."""
        return self._db.execute(
            "SELECT job_id, idx, file_name, sha256 FROM outputs"
            " WHERE flags IS NULL AND file_name IS NOT NULL AND sha256 IS NOT NULL ORDER BY rowid"
        ).fetchall()

    def record_quality(self, rows: Iterable[tuple[str | None, str | None, str, str, int, str, str]]) -> None:
        """Record ``(thumb, phash, flags, job id, output index, file_name, sha256)`` in one transaction,
        each only if the output still holds that file (not one downloaded again since)."""
        with self._tx() as db:
            db.executemany(
                "UPDATE outputs SET thumb = ?, phash = ?, flags = ?"
                " WHERE job_id = ? AND idx = ? AND file_name = ? AND sha256 = ?",
                rows,
            )

    def move_files(self, moves: Iterable[tuple[str, str | None, str, int]]) -> None:
        """Record ``(file_name, thumb, job id, output index)``: files moved to a new place on disk."""
        with self._tx() as db:
            db.executemany("UPDATE outputs SET file_name = ?, thumb = ? WHERE job_id = ? AND idx = ?", moves)

    def mark_succeeded(self, job_id: str) -> list[str]:
        """Every output is on disk: the job succeeded. Returns the downstream jobs it made runnable, in
        manifest order."""
        with self._tx() as db:
            return self._succeeded(db, job_id)

    def _succeeded(self, db: sqlite3.Connection, job_id: str) -> list[str]:
        db.execute(
            "UPDATE jobs SET status = 'succeeded', finished_at = ? WHERE id = ?", (self._clock(), job_id)
        )
        db.execute(
            "UPDATE jobs SET waiting = waiting - 1 WHERE status = 'pending' AND waiting > 0 AND id IN"
            " (SELECT job_id FROM deps WHERE needs_id = ?)",
            (job_id,),
        )
        released = db.execute(
            "SELECT j.id FROM deps d JOIN jobs j ON j.id = d.job_id WHERE d.needs_id = ?"
            " AND j.status = 'pending' AND j.waiting = 0 AND j.live = 1 ORDER BY j.seq",
            (job_id,),
        ).fetchall()
        return [r[0] for r in released]

    def mark_failed(self, job_id: str, status: str, error: str) -> dict[str, int]:
        """The job ends without output (``failed``, ``expired``, ...); its downstream jobs are skipped
        (returned: how many, by stage)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                (status, error, self._clock(), job_id),
            )
            return self._skip_dependents(db, job_id)

    def reset_pending(self, job_id: str, error: str | None = None) -> None:
        """Put the job back to be created again (its prediction was canceled on interrupt, or expired)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'pending', prediction_id = NULL, error = ? WHERE id = ?",
                (error, job_id),
            )

    def _skip_dependents(self, db: sqlite3.Connection, job_id: str) -> dict[str, int]:
        down = (
            "WITH RECURSIVE down(id) AS (SELECT job_id FROM deps WHERE needs_id = ?"
            " UNION SELECT d.job_id FROM deps d JOIN down ON d.needs_id = down.id)"
        )
        found = db.execute(
            f"{down} SELECT stage, COUNT(*) FROM jobs"
            " WHERE id IN (SELECT id FROM down) AND status = 'pending' GROUP BY stage",
            (job_id,),
        ).fetchall()
        if found:
            db.execute(
                f"{down} UPDATE jobs SET status = 'skipped', error = ?, finished_at = ?"
                " WHERE id IN (SELECT id FROM down) AND status = 'pending'",
                (job_id, f"upstream job {job_id} did not succeed", self._clock()),
            )
        return {stage: int(n) for stage, n in found}

    def downloaded_files(self) -> list[tuple[str, int, str, str, int, int | None]]:
        """``(job_id, idx, file_name, sha256, bytes, mtime_ns)`` of every file of a succeeded live job, as
        recorded (whether they are still there is the caller's to check: the store reads no files)."""
        return self._db.execute(
            "SELECT o.job_id, o.idx, o.file_name, o.sha256, o.bytes, o.mtime_ns FROM outputs o"
            " JOIN jobs j ON j.id = o.job_id"
            " WHERE j.status = 'succeeded' AND j.live = 1 AND o.file_name IS NOT NULL"
        ).fetchall()

    def reopen_files(self, reopen: Iterable[str], confirmed: Iterable[tuple[int, str, int]] = ()) -> None:
        """Jobs whose files are gone or changed go back to ``downloading`` (fetched again, or created again
        if the API no longer has the output); ``confirmed`` ``(mtime_ns, job_id, idx)`` records the new
        time of files found unchanged by their hash."""
        with self._tx() as db:
            db.executemany("UPDATE outputs SET mtime_ns = ? WHERE job_id = ? AND idx = ?", list(confirmed))
            for job_id in reopen:
                db.execute(
                    "UPDATE outputs SET file_name = NULL WHERE job_id = ? AND file_name IS NOT NULL",
                    (job_id,),
                )
                db.execute("UPDATE jobs SET status = 'downloading' WHERE id = ?", (job_id,))
                # Its pending downstream jobs wait for it again (they need its file, or a new one).
                db.execute(
                    "UPDATE jobs SET waiting = waiting + 1 WHERE status = 'pending' AND id IN"
                    " (SELECT job_id FROM deps WHERE needs_id = ?)",
                    (job_id,),
                )

    def log_error(self, job_id: str | None, message: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO errors (at, job_id, message) VALUES (?, ?, ?)", (self._clock(), job_id, message)
            )

    def remember_upload(self, sha256: str, url: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO uploads (sha256, url, uploaded_at) VALUES (?, ?, ?)",
                (sha256, url, self._clock()),
            )


def open_readonly(out_dir: Path) -> sqlite3.Connection | None:
    """A read-only connection to a folder's state (None if there is none), safe beside a running run.

    A WAL database that no connection has open has no ``-wal`` file; a read-only connection would create
    ``-wal`` and ``-shm`` files beside it and leave them there. So when there is none, the file is read
    as immutable, which creates nothing: reading must leave the folder as it was. ``status``, ``plan`` and
    the folder reader open it this way; :mod:`flux_batch.runner.state.queries` answers their questions."""
    path = Path(out_dir) / STATE_FILE
    if not path.exists():
        return None
    idle = not path.with_name(f"{STATE_FILE}-wal").exists()
    return connect(path, readonly=True, immutable=idle)


def done_counts(
    out_dir: Path,
    job_ids: Callable[[], Iterable[tuple[str, str]]],
    *,
    batch: int = 900,
    fingerprint: str | None = None,
) -> Callable[[str], dict[str, int]] | None:
    """For ``plan``: a function giving, for a stage, its jobs' counts by public status in the folder's state.

    ``job_ids()`` yields ``(stage, job id)`` for every job of the manifest, stage by stage, so an edited
    manifest is counted as it is now (changed jobs are new, not done); it is read once, at the first
    question, for every stage. When the state's last complete load was of a manifest with this
    ``fingerprint`` (:mod:`flux_batch.jobs.fingerprint`), its live jobs are those jobs and are counted
    directly, without expanding the manifest. None when the folder has no state yet.
    """
    if not (Path(out_dir) / STATE_FILE).exists():
        return None
    live = _live_counts(out_dir) if fingerprint is not None else None
    if live is not None and live[0] == fingerprint:
        by_stage = live[1]
        return lambda stage: dict(by_stage.get(stage, {}))
    counted: dict[str, dict[str, int]] | None = None

    def count(stage: str) -> dict[str, int]:
        nonlocal counted
        if counted is None:
            counted = _counts_of(out_dir, job_ids(), batch)
        return dict(counted.get(stage, {}))

    return count


def _counts_of(out_dir: Path, job_ids: Iterable[tuple[str, str]], batch: int) -> dict[str, dict[str, int]]:
    """Counts by stage and public status of the ``(stage, job id)`` the state holds."""
    db = open_readonly(out_dir)
    if db is None:
        return {}
    try:
        return {
            stage: queries.done_in(db, (job_id for _, job_id in pairs), batch=batch)
            for stage, pairs in itertools.groupby(job_ids, key=operator.itemgetter(0))
        }
    except sqlite3.Error as exc:
        raise state_error(exc, Path(out_dir) / STATE_FILE) from exc
    finally:
        db.close()


def _live_counts(out_dir: Path) -> tuple[str | None, dict[str, dict[str, int]]] | None:
    """The fingerprint of the state's last complete load, and its live jobs by stage and public status."""
    db = open_readonly(out_dir)
    if db is None:
        return None
    try:
        ingested = queries.meta(db, "ingested")
        by_stage = {stage: fold_counts(by) for stage, by in queries.counts(db).items()}
    except sqlite3.Error:
        return None  # counted the slow way, which reports the problem
    finally:
        db.close()
    return ingested, by_stage
