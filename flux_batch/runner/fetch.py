"""A succeeded job's outputs brought home: every file not yet on disk downloaded (retried), each recorded
only once it is safely in place, then handed to :mod:`flux_batch.runner.image_work` for its thumbnail and
quality values (the job does not wait for them).

Before downloading from a URL past its freshness, and after a download that keeps failing, the API is
asked whether the output is gone (``data_removed``, or past the retention by the prediction's own
``completed_at``, in the API's time): only that is :class:`~flux_batch.errors.OutputGoneError`, after
which the job flow may create the prediction again. A file host's 404 is not the API saying so.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from flux_batch.errors import DownloadError, OutputGoneError
from flux_batch.outputs.layout import image_dir
from flux_batch.outputs.safepath import inside
from flux_batch.runner.context import RunContext
from flux_batch.runner.download import download
from flux_batch.runner.image_work import ImageWork
from flux_batch.runner.retry import retry_call
from flux_batch.runner.state.store import JobRow
from flux_batch.timestamps import parse_epoch


class Fetcher:
    """Downloads for the jobs of one run; ``images`` derives from each image downloaded."""

    def __init__(self, ctx: RunContext, images: ImageWork | None) -> None:
        self._ctx = ctx
        self._images = images

    async def download_all(self, row: JobRow) -> list[str] | None:
        """Fetch every output not yet on disk (retried). OutputGoneError if the API says an output is gone;
        DownloadError if one could not be fetched although the API still has it. The job's last file is
        recorded with its success, in one transaction: then the downstream jobs that made runnable are
        returned (None: the caller marks the job succeeded)."""
        ctx = self._ctx
        settings = ctx.settings
        outputs = ctx.store.outputs(row.id)
        if not outputs:
            if ctx.store.job(row.id).status == "downloading":
                await self.check_gone(row.id)  # succeeded without outputs: removed, or none were made
            return None
        released = None
        for output in outputs:
            if output.file_name:
                path = inside(settings.out_dir, output.file_name)
                if path is not None and path.is_file():
                    continue
            if not output.url or (output.url_until is not None and output.url_until <= ctx.wall()):
                await self.check_gone(row.id)  # a URL past its freshness: ask before downloading
            if not output.url:
                raise DownloadError(f"output {output.idx} of job {row.id} has no URL recorded")
            url = output.url

            async def fetch(url: str = url, idx: int = output.idx) -> Any:
                ctx.client.calls["download"] += 1
                return await download(
                    ctx.client.http,
                    url,
                    settings.out_dir,
                    image_dir(row.job.stage, row.seq),
                    row.job.file_stem(idx),
                    headers=ctx.client.auth_headers(url),
                    max_bytes=settings.max_download_bytes,
                    deadline_s=settings.download_deadline_s,
                )

            try:
                info = await retry_call(fetch, sleep=ctx.sleep, rng=ctx.rng, on_retry=ctx.on_retry)
            except DownloadError:
                await self.check_gone(row.id)  # a file host's 404 is not the API saying it is gone
                raise
            # The file and its folder are fsynced: it is recorded (and the job done) only now.
            released = ctx.store.record_download(row.id, output.idx, info, last=output is outputs[-1])
            if self._images is not None:
                self._images.add(row.id, output.idx, info.file_name, info.sha256)
        return released

    async def check_gone(self, job_id: str) -> None:
        """OutputGoneError if the API says the job's prediction has lost its output: ``data_removed``, or
        past the retention by the prediction's own ``completed_at`` (in the API's time, as measured)."""
        ctx = self._ctx
        prediction_id = ctx.store.job(job_id).prediction_id
        if prediction_id is None:
            return
        prediction = await ctx.other(partial(ctx.client.get, prediction_id))
        completed = parse_epoch(prediction.completed_at)
        api_now = ctx.wall() + (ctx.offsets.low if ctx.offsets.samples else 0.0)
        retention = ctx.settings.retention_s
        if prediction.data_removed:
            raise OutputGoneError(f"the API removed the output of prediction {prediction_id}")
        if completed is not None and api_now >= completed + retention:
            raise OutputGoneError(
                f"prediction {prediction_id} completed {api_now - completed:.0f} s ago, past the API's "
                f"{retention:.0f}-s retention of outputs"
            )
