"""The state store: write-ahead steps, dependencies, resume decisions, changed manifests, counts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flux_batch.errors import StateError
from flux_batch.jobs import Job, upstream_ref
from flux_batch.jobs.ids import job_id
from flux_batch.runner.state.migrations import MIGRATIONS, current_version, migrate
from flux_batch.runner.state.store import FileInfo, Store, done_counts


def make_job(stage: str, prompt: str, seed: int = 1, needs: tuple[str, ...] = ()) -> Job:
    inp: dict[str, object] = {"prompt": prompt, "seed": seed}
    if needs:
        inp["input_image"] = upstream_ref(needs[0])
    return Job(
        id=job_id("a/b", None, inp, needs),
        stage=stage,
        model="a/b",
        version=None,
        input=inp,
        vars={"subject": prompt},
        needs=needs,
        slug=prompt.replace(" ", "-"),
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path, clock=lambda: 1000.0)
    yield s
    s.close()


def load(store: Store, jobs: list[Job], **kw: bool) -> None:
    store.begin_ingest()
    store.add_jobs((j, 0.05) for j in jobs)
    store.prepare_run(**kw)


def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    assert current_version(db) == len(MIGRATIONS)
    names = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY version")]
    assert names == [m.__name__ for m in MIGRATIONS]
    assert migrate(db) == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"INSERT INTO _migrations VALUES ({len(MIGRATIONS) + 1}, 'future', 0)")
    db.close()
    with pytest.raises(StateError, match="newer than this flux-batch"):
        Store.open(tmp_path)


def test_not_a_database_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError):
        Store.open(tmp_path)


def test_write_ahead_lifecycle_and_downstream_release(store: Store) -> None:
    base = make_job("base", "cat")
    edit = make_job("edit", "gold cat", needs=(base.id,))
    load(store, [base, edit])
    assert [r.id for r in store.runnable(10)] == [base.id]
    n = store.begin_attempt(base.id, {"prompt": "cat", "seed": 1}, intent_at=999.0)
    assert n == 1 and store.job(base.id).status == "submitting"
    assert store.attempts(base.id)[0].prediction_id is None  # intent recorded before any id
    store.attach(base.id, "p1", "starting", "2024-01-01T00:00:00Z")
    assert store.job(base.id).prediction_id == "p1" and store.known_prediction("p1")
    store.record_terminal(
        base.id, status="succeeded", error=None, urls=("http://x/a.png",), url_until=4600.0,
        completed_at="2024-01-01T00:00:02Z", predict_time=1.2,
    )  # fmt: skip
    assert store.job(base.id).status == "downloading"
    assert store.runnable(10) == []  # edit waits for the download, not just the prediction
    store.record_download(base.id, 0, FileInfo("images/base/cat.png", "ab" * 32, 10, 4, 4))
    assert store.mark_succeeded(base.id) == [edit.id]
    assert [r.id for r in store.runnable(10)] == [edit.id]
    assert store.spent_usd() == pytest.approx(0.05)
    assert store.outputs(base.id)[0].file_name == "images/base/cat.png"


def test_a_job_s_last_file_and_its_success_share_one_commit(store: Store) -> None:
    base = make_job("base", "cat")
    edit = make_job("edit", "gold cat", needs=(base.id,))
    load(store, [base, edit])
    store.begin_attempt(base.id, {"prompt": "cat", "seed": 1}, intent_at=999.0)
    store.attach(base.id, "p1", "starting", None)
    store.record_terminal(
        base.id, status="succeeded", error=None, urls=("http://x/a.png", "http://x/b.png"),
        url_until=4600.0, completed_at=None, predict_time=1.2,
    )  # fmt: skip
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    assert store.record_download(base.id, 0, FileInfo("images/base/a.png", "ab" * 32, 10, 4, 4)) is None
    assert store.job(base.id).status == "downloading"  # one file of two: not done
    released = store.record_download(
        base.id, 1, FileInfo("images/base/b.png", "cd" * 32, 10, 4, 4), last=True
    )
    store._db.set_trace_callback(None)
    assert released == [edit.id] and store.job(base.id).status == "succeeded"
    assert statements.count("COMMIT") == 2  # a transaction per file, the job's success in the last one
    assert [o.flags for o in store.outputs(base.id)] == [None, None]  # quality unknown until derived


def _rows(store: Store, job_id: str) -> tuple[object, ...]:
    db = store._db
    return (
        db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchall(),
        db.execute("SELECT * FROM attempts WHERE job_id = ?", (job_id,)).fetchall(),
        db.execute("SELECT * FROM outputs WHERE job_id = ?", (job_id,)).fetchall(),
    )


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_an_answer_that_is_already_the_end_is_one_commit_writing_each_row_once(
    tmp_path: Path, status: str
) -> None:
    """A create answered once its prediction ended (Prefer: wait): record_terminal given the answer leaves
    the state attach then record_terminal leave, in one commit that updates the attempt's row and the
    job's row once each (twice each before, the job's status passing through 'submitted'); a failure
    still skips downstream."""
    states = []
    for combined in (False, True):
        store = Store.open(tmp_path / str(combined), clock=lambda: 1000.0)
        base = make_job("base", "cat")
        edit = make_job("edit", "gold cat", needs=(base.id,))
        load(store, [base, edit])
        store.begin_attempt(base.id, {"prompt": "cat", "seed": 1}, intent_at=999.0)
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        end = dict(status=status, error=None if status == "succeeded" else "nsfw", url_until=4600.0,
                   urls=("http://x/a.png",) if status == "succeeded" else (),
                   completed_at="2024-01-01T00:00:02Z", predict_time=1.2)  # fmt: skip
        if combined:
            answer = ("p1", "2024-01-01T00:00:00Z")
            skipped = store.record_terminal(base.id, answer=answer, **end)  # type: ignore[arg-type]
        else:
            store.attach(base.id, "p1", "succeeded", "2024-01-01T00:00:00Z")
            skipped = store.record_terminal(base.id, **end)  # type: ignore[arg-type]
        store._db.set_trace_callback(None)
        assert skipped == ({} if status == "succeeded" else {"edit": 1})
        states.append(_rows(store, base.id))
        store.close()
    assert states[0] == states[1]
    assert statements.count("COMMIT") == 1
    assert sum(sql.startswith("UPDATE jobs SET") for sql in statements) == 1
    assert sum(sql.startswith("UPDATE attempts SET") for sql in statements) == 1


def test_only_the_intent_commit_is_fsynced(store: Store) -> None:
    job = make_job("base", "cat")
    load(store, [job])
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.begin_attempt(job.id, {"prompt": "cat", "seed": 1}, intent_at=999.0)
    store.attach(job.id, "p1", "starting", "2024-01-01T00:00:00Z")
    store._db.set_trace_callback(None)
    full = statements.index("PRAGMA synchronous=FULL")
    commits = [i for i, sql in enumerate(statements) if sql == "COMMIT"]
    assert "INSERT INTO attempts" in " ".join(statements[full : commits[0]])  # the intent, synced
    assert statements[commits[0] + 1] == "PRAGMA synchronous=NORMAL"  # and back for everything else
    assert statements.count("PRAGMA synchronous=FULL") == 1
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_a_job_writes_few_pages_of_log(tmp_path: Path) -> None:
    """Intent, answer with its end, file with its success: the log receives about 12 pages a job (18 with
    the index of jobs by stage and status, which each status change rewrote); the counts by stage and
    status are the same without it."""
    store = Store.open(tmp_path)
    jobs = [make_job("base", f"cat {i}", seed=i) for i in range(300)]
    load(store, jobs)
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._db.execute("PRAGMA wal_autocheckpoint=0")
    for i, job in enumerate(jobs[:200]):
        store.begin_attempt(job.id, dict(job.input), 1000.0 + i, durable=False)
        store.record_terminal(
            job.id, status="succeeded", error=None, urls=(f"http://x/{i}.png",), url_until=4600.0,
            completed_at=None, predict_time=1.0, answer=(f"p{i}", None),
        )  # fmt: skip
        store.record_download(job.id, 0, FileInfo(f"images/base/{i}.png", "ab" * 32, 10, 4, 4), last=True)
    frames = ((tmp_path / "state.db-wal").stat().st_size - 32) / (4096 + 24)
    assert frames / 200 < 16
    assert store.counts() == {"base": {"succeeded": 200, "pending": 100}}
    store.close()


def test_failure_skips_downstream_transitively(store: Store) -> None:
    a = make_job("a", "x")
    b = make_job("b", "y", needs=(a.id,))
    c = make_job("c", "z", needs=(b.id,))
    load(store, [a, b, c])
    store.begin_attempt(a.id, {}, 1.0)
    store.attach(a.id, "p", "processing", None)
    store.record_terminal(
        a.id, status="failed", error="flagged as sensitive (E005)", urls=(), url_until=0, completed_at=None,
        predict_time=None,
    )  # fmt: skip
    assert {store.job(j.id).status for j in (b, c)} == {"skipped"}
    ids = {"a": [a.id], "b": [b.id], "c": [c.id, "not-in-the-state"]}
    count = done_counts(store.path.parent, lambda: [(s, i) for s, by in ids.items() for i in by])
    assert count is not None
    assert {s: count(s) for s in ids} == {"a": {"failed": 1}, "b": {"skipped": 1}, "c": {"skipped": 1}}


def test_retry_failed_revives_with_optional_reseed_and_unskips(store: Store) -> None:
    a = make_job("a", "x", seed=42)
    b = make_job("b", "y", needs=(a.id,))
    load(store, [a, b])
    store.begin_attempt(a.id, {}, 1.0)
    store.mark_failed(a.id, "failed", "boom")
    load(store, [a, b])  # without --retry-failed nothing changes
    assert store.job(a.id).status == "failed" and store.job(b.id).status == "skipped"
    load(store, [a, b], retry_failed=True, reseed=True)
    row = store.job(a.id)
    assert row.status == "pending" and row.error is None and row.seed not in (None, 42)
    assert row.send_input()["seed"] == row.seed
    assert store.job(b.id).status == "pending" and store.job(b.id).id not in [r.id for r in store.runnable(9)]


def test_changed_manifest_keeps_old_jobs_but_not_live(store: Store) -> None:
    a, b = make_job("s", "one"), make_job("s", "two")
    load(store, [a, b])
    c = make_job("s", "three")
    load(store, [b, c])
    assert [r.id for r in store.iter_jobs()] == [b.id, c.id]
    assert {r.id for r in store.iter_jobs(live_only=False)} == {a.id, b.id, c.id}
    assert store.get_meta("columns") == {"vars": ["subject"], "inputs": []}


def test_in_progress_jobs_are_listed_for_resume(store: Store) -> None:
    a, b = make_job("s", "one"), make_job("s", "two")
    load(store, [a, b])
    store.begin_attempt(a.id, {"prompt": "one"}, 5.0)
    load(store, [a, b])
    assert [r.id for r in store.in_progress()] == [a.id]
    assert [r.id for r in store.runnable(10)] == [b.id]


def test_expired_jobs_are_redone(store: Store) -> None:
    a = make_job("s", "one")
    load(store, [a])
    store.mark_failed(a.id, "expired", "output gone")
    load(store, [a])
    assert store.job(a.id).status == "pending"


def test_uploads_errors_and_meta(store: Store) -> None:
    store.remember_upload("h", "https://files/1")
    assert store.upload_for("h", newer_than=500.0) == "https://files/1"
    assert store.upload_for("h", newer_than=1500.0) is None
    store.log_error("j", "it broke")
    assert store.recent_errors()[0][1:] == ("j", "it broke")
    store.set_meta("k", {"x": 1})
    assert store.get_meta("k") == {"x": 1} and store.get_meta("missing", 3) == 3


def test_done_counts_without_state(tmp_path: Path) -> None:
    assert done_counts(tmp_path, lambda: [("s", "x")]) is None
