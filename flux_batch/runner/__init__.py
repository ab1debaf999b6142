"""The runner: executes a job graph against the API at the rate limit, with crash-safe resumable state.

prepare.py       from a manifest and the caller's choices to everything a run needs (API, token, budget)
model_fetch.py   the manifest's models' schemas fetched over the client into the user's cache
folder.py        what an output folder already holds, read without changing it
session.py       one run on a folder, end to end: lock, state, executor, tables, report
executor.py      the dispatcher: slots, budget, interrupts; acts on each job's outcome
in_flight.py     how many jobs may be in flight (the create rate times the observed hold time)
job_flow.py      one job's state machine, ending in an Outcome
fetch.py         a succeeded job's files downloaded and recorded
image_work.py    each downloaded image's thumbnail and quality values, made in worker processes
checkpoints.py   when the tables are rewritten during a run
context.py       what those pieces share (store, client, limiters, clocks, figures, stop flags)
settings.py      RunSettings, RunStats, RunResult
queue.py         runnable jobs in order, downstream jobs first
client.py        the API client (httpx in, flux_batch.errors out); http_client.py its connection pool
ratelimit.py     create and other-endpoint limiters, adaptive on 429 (over flux_batch.ratelimit)
retry.py         backoff policies and a retry helper; deadline.py a call's deadline
reconcile.py     resolving ambiguous creates by listing recent predictions; clock_offset.py the window
inputs.py        turning run-time image references into URLs (fresh output, upload, data: URI)
download.py      safe streaming downloads; the folder's files checked against the state on resume
lock.py          the output folder's lock
progress.py      progress events and the tracker sent to a callback
status.py        the ``status`` summary of a folder
state/           the SQLite (WAL) store, its queries and its migrations
"""
