"""The dispatcher's queue: each runnable job once, never one that has ended since it was read."""

from __future__ import annotations

from pathlib import Path

from test_outputs_tables_at_scale import _job, succeed_all

from flux_batch.runner.queue import RunQueue
from flux_batch.runner.state.store import Store


def test_a_job_that_ended_after_its_batch_was_read_is_not_started_again(tmp_path: Path) -> None:
    # A job already running (started, waiting for the create limiter: still pending in the store) is read
    # into a batch; it succeeds; its batch row came out later as runnable and the job was created a second
    # time (the 5,000-job scale test paid 1-3 predictions twice this way).
    jobs = [_job("base", f"cat {i}", i) for i in range(3)]
    store = Store.open(tmp_path)
    try:
        store.begin_ingest()
        store.add_jobs((j, 0.01) for j in jobs)
        store.prepare_run()
        running = {jobs[1].id}
        queue = RunQueue(store, running.__contains__)
        first = queue.next()
        assert first is not None and first.id == jobs[0].id
        succeed_all(store, [jobs[1]])
        running.clear()
        started = [row.id for row in iter(queue.next, None)]
    finally:
        store.close()
    assert started == [jobs[2].id]
