"""The runner: executes a job graph against the API at the rate limit, with crash-safe resumable state.

client.py      the API client (httpx in, flux_batch.errors out)
limiter.py     create and other-endpoint limiters, adaptive on 429
retry.py       backoff policies and a retry helper
migrations.py  the state database's schema, as ordered migrations
state.py       the SQLite (WAL) store: jobs, attempts, outputs, uploads
lock.py        the output folder's lock
download.py    safe streaming downloads of output files
reconcile.py   resolving ambiguous creates by listing recent predictions
inputs.py      turning run-time image references into URLs (fresh output, upload, data: URI)
executor.py    the async orchestration
outputs.py     manifest.csv, metadata.parquet, run.json
progress.py    progress snapshots sent to a callback
status.py      the ``status`` summary of a folder
"""
