"""From a validated manifest to jobs: the job value (``job``), stable identity (``ids``: canonical JSON, job
ids, derived seeds), the sweep expanded into jobs (``expand``), every job's input checked against its model
(``checks``), counts, cost and time (``plan``), where a job stands (``status``), and what a manifest's
jobs depend on (``fingerprint``: a resume of the same manifest skips loading its jobs again).

Pure: plain data in, plain data out (the checks read only files the manifest names). The names of
``job`` are importable from the package: ``from flux_batch.jobs import Job``.
"""

from __future__ import annotations

from flux_batch.jobs.job import FILE_KEY, UPSTREAM_KEY, Job, file_ref, is_ref, upstream_ref

__all__ = ["FILE_KEY", "UPSTREAM_KEY", "Job", "file_ref", "is_ref", "upstream_ref"]
