"""The simulator's state: predictions and uploaded files, and each prediction's lifecycle.

A prediction's whole future is fixed when it is created (when it starts, when it ends and how); its
status at any moment is read off the injected clock, so nothing runs in the background and tests move
time by hand. Cancels and ``Cancel-After`` deadlines cut that future short.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from flux_batch.jobs.ids import canonical_json
from flux_batch.jobs.status import PREDICTION_TERMINAL
from flux_batch.models import sizes
from flux_batch.models.catalog import ModelSpec
from flux_batch.simulator.catalog import Catalog, SimulatedModel, default_catalog
from flux_batch.simulator.images import ImageSpec, image_spec

ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # lowercase Crockford base32, as Replicate's ids look
ID_LENGTH = 26
QUEUE_FRACTION = 0.1  # the share of a prediction's time spent "starting"
FILE_LIFETIME = 24 * 3600.0
CONTENT_FILTER_ERROR = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
)
TERMINAL = PREDICTION_TERMINAL


@dataclass
class Prediction:
    """One prediction, with its planned timeline in clock seconds."""

    id: str
    seq: int
    model: str
    version: str
    input: dict[str, Any]
    seed: int
    created: float
    started: float
    done: float
    outcome: str  # what happens at ``done``: "succeeded" or "failed"
    error: str | None
    images: tuple[ImageSpec, ...]
    output_list: bool  # output is a list of URLs (else one URL string)
    price_usd: float
    deadline: float | None = None
    canceled_at: float | None = None
    logs_download: bool = False  # logs the output's download, as the kontext models do (seed page 004)
    #: ``(input, output)`` megapixels billed, for a model priced by megapixel (its metrics report them)
    billed_mp: tuple[int, int] | None = None

    def state(self, now: float) -> tuple[str, float | None, float | None]:
        """``(status, started_at, completed_at)`` at ``now``; times are clock seconds or None."""
        stop, aborts = self._stop()
        if stop is not None and stop <= now and stop < self.done:
            if stop < self.started:
                return ("aborted" if aborts else "canceled"), None, stop
            return "canceled", self.started, stop
        if now >= self.done:
            return self.outcome, self.started, self.done
        if now >= self.started:
            return "processing", self.started, None
        return "starting", None, None

    def _stop(self) -> tuple[float | None, bool]:
        """When the prediction is cut short and whether that is by its deadline (aborted if not started)."""
        if self.canceled_at is not None and (self.deadline is None or self.canceled_at <= self.deadline):
            return self.canceled_at, False
        return self.deadline, True

    def logs(self, status: str, now: float) -> str:
        if status in ("starting", "aborted"):
            return ""
        text = f"Using seed: {self.seed}\n"
        if status == "processing":
            return text + "Generating...\n"
        if status in ("succeeded", "failed"):
            text += f"Generating...\nGenerated image in {self.done - self.started:.1f}sec\n"
        if status == "succeeded" and self.logs_download:
            size = self.images[0].estimated_bytes if self.images else 0
            text += f"Downloading {size} bytes\nDownloaded {size / 2**20:.2f}MB in {size / 1.2e6:.2f}sec\n"
        return text


@dataclass
class UploadedFile:
    """A file sent with ``POST /files``."""

    id: str
    seq: int
    name: str
    content_type: str
    data: bytes
    created: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def image_size(self) -> tuple[int, int] | None:
        return image_size(self.data)


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of an encoded image (read from its header); None if it is not one."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # any undecodable upload simply has no known size
        return None


def billed_megapixels(
    values: Mapping[str, Any], images: int, input_sizes: list[tuple[int, int] | None]
) -> tuple[int, int]:
    """``(input, output)`` megapixels a prediction is billed for, as FLUX.2's metrics count them: each
    input image's megapixels (1 when its size is unknown: an image from elsewhere), each output's at the
    size its input asks for; whole megapixels, rounded up (:mod:`flux_batch.models.sizes`)."""
    first = next((size for size in input_sizes if size), None)
    input_mp = sum(sizes.billed_megapixels(*sizes.bounded(size)) if size else 1 for size in input_sizes)
    return input_mp, images * sizes.billed_output_megapixels(values, first)


class Store:
    """Predictions by id (in creation order) and uploads, with ids and timings from one seeded RNG."""

    def __init__(self, seed: int = 0, catalog: Catalog | None = None) -> None:
        self._seed = seed
        self.catalog = catalog or default_catalog()
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(f"store:{self._seed}")
        self.predictions: dict[str, Prediction] = {}
        self.order: list[Prediction] = []
        self.files: dict[str, UploadedFile] = {}  # live uploads (deleted ones leave)
        self._file_order: list[UploadedFile] = []
        self._seen_requests: set[str] = set()
        self.duplicates = 0
        self._pinned: dict[str, SimulatedModel] = {}

    def version_model(self, version_id: str) -> SimulatedModel | None:
        """The model a version id belongs to: a catalog version, or one a create named as
        ``owner/name:<id>`` (the simulator cannot know every real version, so it learns them)."""
        return self.catalog.by_version.get(version_id) or self._pinned.get(version_id)

    def pin_version(self, version_id: str, model: SimulatedModel) -> None:
        if version_id not in self.catalog.by_version:
            self._pinned[version_id] = model

    def new_id(self) -> str:
        return "".join(self.rng.choice(ID_ALPHABET) for _ in range(ID_LENGTH))

    def create(
        self,
        spec: ModelSpec,
        version: str,
        input: dict[str, Any],
        now: float,
        *,
        latency: float,
        failed_error: str | None = None,
        deadline: float | None = None,
        input_sizes: list[tuple[int, int] | None] | None = None,
    ) -> Prediction:
        """Plan and record a new prediction; ``latency`` is its total time from creation to done.
        ``input_sizes``: the sizes of its input images, in order (None where unknown)."""
        key = canonical_json({"model": spec.name, "input": input})
        if key in self._seen_requests:
            self.duplicates += 1
        self._seen_requests.add(key)
        seed = int(input["seed"]) if "seed" in input else self.rng.randrange(2**31)
        count = spec.images_per_prediction(input)
        input_sizes = input_sizes or []
        input_size = next((size for size in input_sizes if size), None)
        images = tuple(image_spec(spec, input, seed, i, input_size) for i in range(count))
        price_usd = (spec.price_usd or 0.0) * count
        billed_mp = None
        if spec.price is not None and spec.price.by_size:
            values = {**spec.defaults, **input}
            billed_mp = billed_megapixels(values, count, input_sizes)
            price_usd = spec.price.billed(values, images=count, input_mp=billed_mp[0], output_mp=billed_mp[1])
        prediction = Prediction(
            id=self.new_id(),
            seq=len(self.order),
            model=spec.name,
            version=version,
            input=input,
            seed=seed,
            created=now,
            started=now + latency * QUEUE_FRACTION,
            done=now + latency,
            outcome="failed" if failed_error else "succeeded",
            error=failed_error,
            images=images,
            output_list=spec.output == "list",
            price_usd=price_usd,
            deadline=deadline,
            logs_download="input_image" in spec.image_inputs,
            billed_mp=billed_mp,
        )
        self.predictions[prediction.id] = prediction
        self.order.append(prediction)
        return prediction

    def sample_latency(self, mean: float) -> float:
        """A prediction's run time: gamma-distributed around ``mean`` (shape 4: mostly within 0.5x-2x)."""
        return self.rng.gammavariate(4.0, mean / 4.0) if mean > 0 else 0.0

    def cancel(self, prediction: Prediction, now: float) -> None:
        status, _, _ = prediction.state(now)
        if status not in TERMINAL and prediction.canceled_at is None:
            prediction.canceled_at = now

    def page(
        self, *, before_seq: int | None, created_after: float | None, created_before: float | None, limit: int
    ) -> tuple[list[Prediction], int | None]:
        """Up to ``limit`` predictions, newest first, older than ``before_seq``; and the next cursor."""
        end = len(self.order) if before_seq is None else min(before_seq, len(self.order))
        results: list[Prediction] = []
        for seq in range(end - 1, -1, -1):
            p = self.order[seq]
            if created_before is not None and p.created >= created_before:
                continue
            if created_after is not None and p.created < created_after:
                break  # creation times never decrease along ``order``
            if len(results) == limit:
                return results, results[-1].seq
            results.append(p)
        return results, None

    def upload(
        self, name: str, content_type: str, data: bytes, now: float, metadata: Mapping[str, Any]
    ) -> UploadedFile:
        file = UploadedFile(
            self.new_id(), len(self._file_order), name, content_type, data, now, dict(metadata)
        )
        self.files[file.id] = file
        self._file_order.append(file)
        return file

    def delete_file(self, file_id: str) -> bool:
        """Forget an upload; False if there was none by that id."""
        return self.files.pop(file_id, None) is not None

    def file_page(self, *, before_seq: int | None, limit: int) -> tuple[list[UploadedFile], int | None]:
        """Up to ``limit`` live uploads, newest first, older than ``before_seq``; and the next cursor."""
        end = len(self._file_order) if before_seq is None else min(before_seq, len(self._file_order))
        results: list[UploadedFile] = []
        for seq in range(end - 1, -1, -1):
            file = self._file_order[seq]
            if file.id not in self.files:
                continue
            if len(results) == limit:
                return results, results[-1].seq
            results.append(file)
        return results, None

    def billed_usd(self, now: float) -> float:
        """What the predictions that succeeded by ``now`` cost: per image, or (FLUX.2) by the megapixels
        their metrics report."""
        return round(sum(p.price_usd for p in self.order if p.state(now)[0] == "succeeded"), 6)

    def counts(self, now: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.order:
            status = p.state(now)[0]
            counts[status] = counts.get(status, 0) + 1
        return counts

    def __repr__(self) -> str:
        return f"Store({len(self.order)} predictions, {len(self.files)} files, {self.duplicates} duplicates)"
