"""The plan: per stage, how many jobs and images, what they should cost and how long they should take.

Counts come from :func:`flux_batch.jobs.expand.count_jobs_and_images` (arithmetic where possible), so a plan
of a million jobs is cheap. Time comes from the create rate limit (``api.create_rpm``: every job needs one
create), each model's typical prediction time and the in-flight cap these give (Little's law, with the
ceiling ``api.max_in_flight``; :func:`flux_batch.runner.in_flight.wall_time`), stages counted back to
back. An optional ``done`` callback (given by the runner, which owns the output folder's state) adds each
stage's counts by status from earlier runs; with them and the folder's spend so far, the plan says what is
still *to do* and what it should cost, which is what the budget (``max_cost_usd``) is checked against: the
folder's spend plus the work still to do.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flux_batch.jobs import Job
from flux_batch.jobs.expand import count_jobs_and_images, expand, expand_stage, rows
from flux_batch.jobs.status import FAILED, JobStatus
from flux_batch.manifest.model import Manifest, Stage
from flux_batch.models.catalog import ModelSpec
from flux_batch.runner.in_flight import wall_time

SAMPLES_PER_STAGE = 3


def job_cost(job: Job, spec: ModelSpec) -> float | None:
    """The job's estimated price (per image, or by the megapixels of its output and input images);
    None when the price is unknown."""
    return spec.cost(job.input)


@dataclass(frozen=True)
class ModelPlan:
    """One model's share of a stage: jobs, images, estimated cost (None: unpriced) and time: its jobs'
    share of the stage's throughput, plus one of its predictions (``predict_s``, the model's typical time;
    ``predict_known`` False when the model states none and a default stands in)."""

    model: str
    jobs: int
    images: int
    cost_usd: float | None
    time_s: float
    price: str = ""  # the price, in words
    predict_s: float = 0.0
    predict_known: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "jobs": self.jobs,
            "images": self.images,
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6),
            "time_s": round(self.time_s, 1),
            "predict_s": self.predict_s,
            "predict_known": self.predict_known,
            "price": self.price,
        }


@dataclass(frozen=True)
class StagePlan:
    """One stage's share of the plan. ``cost_usd`` is None when the model's price is unknown."""

    id: str
    model: str
    jobs: int
    images: int
    price_usd: float | None
    cost_usd: float | None
    time_s: float
    needs: tuple[str, ...] = ()
    done: Mapping[str, int] | None = None
    todo: int = 0  # jobs this stage still has to run (all of them without a folder)
    models: tuple[ModelPlan, ...] = ()  # the share of each model its jobs use
    todo_time_s: float = 0.0  # the time the jobs still to do should take

    @property
    def todo_cost_usd(self) -> float | None:
        """The estimated cost of the jobs still to do (a stage's jobs cost alike on average)."""
        if self.cost_usd is None:
            return None
        return self.cost_usd * self.todo / self.jobs if self.jobs else 0.0

    def to_json(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "model": self.model,
            "needs": list(self.needs),
            "jobs": self.jobs,
            "images": self.images,
            "price_usd": self.price_usd,
            "cost_usd": self.cost_usd,
            "time_s": round(self.time_s, 1),
            "todo_jobs": self.todo,
            "todo_cost_usd": None if self.todo_cost_usd is None else round(self.todo_cost_usd, 6),
            "todo_time_s": round(self.todo_time_s, 1),
        }
        if self.done is not None:
            data["done"] = dict(self.done)
        data["models"] = [m.to_json() for m in self.models]
        return data


@dataclass(frozen=True)
class Plan:
    """What running a manifest would do. ``cost_usd`` covers the stages with a known price only."""

    name: str
    manifest: str
    output: str
    stages: tuple[StagePlan, ...]
    create_rpm: float
    max_cost_usd: float | None
    samples: tuple[Job, ...] = ()
    max_in_flight: int = 0  # the ceiling on jobs in flight the times assume (api.max_in_flight)
    warnings: tuple[str, ...] = field(default=())
    spent_usd: float = 0.0  # already spent in the output folder (every run, every manifest)
    api: Mapping[str, Any] = field(default_factory=dict)  # base_url, simulator, token_env
    job_source: Callable[[], Iterator[Job]] | None = field(default=None, repr=False, compare=False)

    def iter_jobs(self) -> Iterator[Job]:
        """Every job of the plan, in manifest order, expanded as they are read (never all in memory)."""
        return iter(()) if self.job_source is None else self.job_source()

    @property
    def jobs(self) -> int:
        return sum(s.jobs for s in self.stages)

    @property
    def images(self) -> int:
        return sum(s.images for s in self.stages)

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd or 0.0 for s in self.stages)

    @property
    def cost_complete(self) -> bool:
        """False when some stage's model has no known price (set one with ``prices:``)."""
        return all(s.cost_usd is not None for s in self.stages)

    @property
    def time_s(self) -> float:
        return sum(s.time_s for s in self.stages)

    @property
    def todo_jobs(self) -> int:
        return sum(s.todo for s in self.stages)

    @property
    def todo_cost_usd(self) -> float:
        """The estimated cost of the work still to do (stages with a known price only)."""
        return sum(s.todo_cost_usd or 0.0 for s in self.stages)

    @property
    def todo_time_s(self) -> float:
        return sum(s.todo_time_s for s in self.stages)

    @property
    def over_budget(self) -> bool:
        """True when the folder's spend plus the estimate of the work still to do passes the cap."""
        return (
            self.max_cost_usd is not None and self.spent_usd + self.todo_cost_usd > self.max_cost_usd + 1e-9
        )

    def to_json(self) -> dict[str, Any]:
        """The whole plan as one JSON-able object (``plan --json``, and ``run.json``'s ``plan``)."""
        return {
            "name": self.name,
            "manifest": self.manifest,
            "output": self.output,
            "jobs": self.jobs,
            "images": self.images,
            "cost_usd": round(self.cost_usd, 6),
            "cost_complete": self.cost_complete,
            "max_cost_usd": self.max_cost_usd,
            "spent_usd": round(self.spent_usd, 6),
            "todo_jobs": self.todo_jobs,
            "todo_cost_usd": round(self.todo_cost_usd, 6),
            "over_budget": self.over_budget,
            "api": dict(self.api),
            "time_s": round(self.time_s, 1),
            "todo_time_s": round(self.todo_time_s, 1),
            "create_rpm": self.create_rpm,
            "max_in_flight": self.max_in_flight,
            "stages": [s.to_json() for s in self.stages],
            "samples": [j.to_json() for j in self.samples],
            "warnings": list(self.warnings),
        }


#: Jobs that a run leaves as they are, by public status: succeeded ones (and ``download_failed`` ones:
#: paid for, a run only downloads them), and without ``retry_failed`` failed ones and those skipped because
#: of them.
LEFT_AS_THEY_ARE = (JobStatus.SUCCEEDED, JobStatus.DOWNLOAD_FAILED)
LEFT_UNLESS_RETRIED = (*sorted(FAILED), JobStatus.SKIPPED)


def todo_count(jobs: int, done: Mapping[str, int] | None, *, retry_failed: bool) -> int:
    """How many of a stage's ``jobs`` a run still has to do, given its counts by status so far."""
    if not done:
        return jobs
    kept = LEFT_AS_THEY_ARE if retry_failed else LEFT_AS_THEY_ARE + LEFT_UNLESS_RETRIED
    return max(0, jobs - sum(done.get(status, 0) for status in kept))


def build_plan(
    manifest: Manifest,
    *,
    done: Callable[[str], Mapping[str, int]] | None = None,
    spent_usd: float = 0.0,
    retry_failed: bool = False,
    output: str | None = None,
    samples_per_stage: int = SAMPLES_PER_STAGE,
) -> Plan:
    """The plan for a loaded manifest.

    ``done(stage_id)`` (optional) gives a stage's counts by status in the output folder so far, and
    ``spent_usd`` what the folder has spent; ``retry_failed`` says whether failed jobs will run again.
    ``output`` is the folder shown (default: the manifest's).
    """
    jobs, images = count_jobs_and_images(manifest)
    stages = []
    samples: list[Job] = []
    for stage in manifest.stages:
        spec = manifest.spec_for(stage.id)
        stage_done = done(stage.id) if done else None
        shares = model_shares(manifest, stage, jobs[stage.id], images[stage.id])
        priced = all(m.cost_usd is not None for m in shares)
        todo = todo_count(jobs[stage.id], stage_done, retry_failed=retry_failed)
        stages.append(
            StagePlan(
                id=stage.id,
                model=", ".join(m.model for m in shares) if stage.model_varies else stage.model,
                jobs=jobs[stage.id],
                images=images[stage.id],
                price_usd=spec.price_usd if not stage.model_varies else None,
                cost_usd=sum(m.cost_usd or 0.0 for m in shares) if priced else None,
                time_s=_stage_time(manifest, shares, 1.0),
                needs=stage.needs,
                done=stage_done,
                todo=todo,
                models=tuple(shares),
                todo_time_s=_stage_time(manifest, shares, todo / jobs[stage.id] if jobs[stage.id] else 0.0),
            )
        )
        samples.extend(itertools.islice(expand_stage(manifest, stage), samples_per_stage))
    return Plan(
        name=manifest.name,
        manifest=str(manifest.path),
        output=output or str(manifest.output),
        stages=tuple(stages),
        create_rpm=manifest.api.create_rpm,
        max_cost_usd=manifest.max_cost_usd,
        samples=tuple(samples),
        max_in_flight=manifest.api.max_in_flight,
        warnings=tuple(w.render() for w in manifest.warnings),
        spent_usd=spent_usd,
        api={
            "base_url": None if manifest.api.simulator else manifest.api.base_url,
            "simulator": manifest.api.simulator,
            "token_env": None if manifest.api.simulator else manifest.api.token_env,
        },
        job_source=lambda: expand(manifest),
    )


def model_shares(manifest: Manifest, stage: Stage, jobs: int, images: int) -> list[ModelPlan]:
    """Each model's jobs, images, estimated cost and time in ``stage``.

    A stage of one model priced per image is counted by arithmetic; otherwise (a model axis, or a price
    by megapixels) every job's input is priced, in the manifest checks' cheap mode."""
    return _timed(manifest, _counted(manifest, stage, jobs, images))


def _counted(manifest: Manifest, stage: Stage, jobs: int, images: int) -> list[ModelPlan]:
    spec = manifest.spec_for(stage.id)
    price = spec.price
    if not stage.model_varies and (price is None or (len(price.rates) == 1 and not price.by_size)):
        per_image = None if price is None else price.rates[0].per_image + price.rates[0].per_run
        if price is not None and price.rates[0].per_run:
            cost: float | None = price.rates[0].per_run * jobs + price.rates[0].per_image * images
        else:
            cost = None if per_image is None else per_image * images
        return [_share(stage.model, spec, jobs, images, cost)]
    shares: dict[str, list[Any]] = {}  # model -> [spec, jobs, images, cost]
    for _, combo, input, _ in rows(manifest, stage, full=False):
        model = stage.job_model(combo)[0]
        share = shares.get(model)
        if share is None:
            share = shares[model] = [manifest.spec(model), 0, 0, 0.0]
        job_spec: ModelSpec = share[0]
        share[1] += 1
        share[2] += job_spec.images_per_prediction(input)
        cost_one = job_spec.cost(input)
        share[3] = None if cost_one is None or share[3] is None else share[3] + cost_one
    return [_share(model, model_spec, n, imgs, cost) for model, (model_spec, n, imgs, cost) in shares.items()]


def _share(model: str, spec: ModelSpec, jobs: int, images: int, cost: float | None) -> ModelPlan:
    known = spec.typical_s is not None
    return ModelPlan(model, jobs, images, cost, 0.0, _words(spec), spec.hold_s, known)


def _timed(manifest: Manifest, shares: list[ModelPlan]) -> list[ModelPlan]:
    """The shares with their times: each model's jobs at the stage's throughput, plus one prediction."""
    _, throughput = _wall_time(manifest, [(m.jobs, m.predict_s) for m in shares])
    return [
        dataclasses.replace(m, time_s=(m.jobs / throughput if throughput else 0.0) + m.predict_s)
        for m in shares
    ]


def _stage_time(manifest: Manifest, shares: list[ModelPlan], fraction: float) -> float:
    """The time a ``fraction`` of the stage's jobs (all: 1.0; those still to do) should take."""
    return _wall_time(manifest, [(round(m.jobs * fraction), m.predict_s) for m in shares])[0]


def _wall_time(manifest: Manifest, shares: list[tuple[int, float]]) -> tuple[float, float]:
    api = manifest.api
    return wall_time(shares, rate=api.create_rpm / 60.0, ceiling=api.max_in_flight, burst=api.burst)


def _words(spec: ModelSpec) -> str:
    return "unpriced" if spec.price is None else spec.price.describe()
