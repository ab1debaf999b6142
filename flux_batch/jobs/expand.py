"""Expansion: a manifest becomes a deterministic stream of :class:`~flux_batch.jobs.Job` s.

Stages are expanded one after another in topological order. A stage's jobs are its sweep's combinations,
times each upstream image it takes. The upstream images are computed once per pass (:class:`Upstream`):
while :func:`expand` streams a stage that a later stage takes images from, it keeps what that later stage
needs of them (the images its ``where`` keeps, as job id, output and variables; never whole jobs), until
the last stage taking them is expanded; a stage expanded alone streams its upstream stages again instead
(the plan's samples read a few jobs of each stage), unless given an :class:`Upstream` to fill. A job's
input is: the manifest's defaults and the stage's literal inputs, then the swept inputs,
the rendered prompt, and a seed derived from the base seed, the stage and the job's own sweep values
(plus the upstream job it edits), never from its position. Its id hashes the whole request.

The same generator also runs in a cheaper *check* mode (no seeds, no ids, placeholder upstream images)
that the manifest checks and the counts use.

A stage whose sweep has a ``model`` variable gives each job the model of its values. Its reference images
(``input_image``, ``input_images`` or ``images``, whichever the stage names) go to the job's model's own
reference input: one image as a one-element list to a model that takes a list, a one-element list as the
image to a model that takes one (several images for a one-image model are an error of the manifest
checks). Any other input that job's model does not take, but another model of the stage does, is left out
of that job (the manifest checks warn about it, naming the jobs): the API would refuse it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flux_batch.jobs import Job, file_ref, ids, upstream_ref
from flux_batch.manifest.model import MODEL_VAR, ImageSource, Manifest, Stage
from flux_batch.manifest.sweep import REPEAT, matches
from flux_batch.models import catalog

#: Stands in for an upstream image in check mode (its job id is not computed there).
PLACEHOLDER_REF: Mapping[str, Any] = upstream_ref("", 0)
SLUG_LENGTH = 32
#: Marks where a source's images go in a list input written in the manifest: ``{"$slot": n}``.
SLOT_KEY = "$slot"


@dataclass(frozen=True, slots=True)
class UpstreamImage:
    """One output image of an upstream job, as fed to the ``input`` of a downstream job."""

    input: str
    job_id: str
    output: int
    vars: Mapping[str, Any]


class MissingVariableError(ValueError):
    """A combination has no value for a variable its prompt uses (an ``include`` entry that extends no
    combination is a job of its own, with only its own variables)."""

    def __init__(self, stage: Stage, name: str, combo: Mapping[str, Any]) -> None:
        super().__init__(f"the combination {dict(combo)} has no value for {{{name}}} in the prompt")
        self.stage = stage
        self.name = name


Row = tuple[dict[str, Any], dict[str, Any], dict[str, Any], tuple[UpstreamImage, ...]]


#: One upstream image as kept for a later stage: (job id, output index, the job's variables).
KeptImage = tuple[str, int, Mapping[str, Any]]


class Upstream:
    """The upstream images of one pass over a manifest, each source's computed once.

    Without it, each chain stage expands its upstream stages again from their start, and theirs in turn
    (an edit of an edit expands three stages): most of the cost of a chain's expansion. :func:`expand`
    feeds it each stage's jobs as they stream by (:meth:`keep`), keeping of a stage only the images a
    later source takes, and lets them go after the last stage that takes them (:meth:`release`). Given
    to :func:`expand_stage` alone, it is filled on first need instead, by expanding the upstream stage
    (once, whatever the number of stages and sources asking).
    """

    def __init__(self, manifest: Manifest) -> None:
        self._manifest = manifest
        self._images: dict[tuple[str, str], list[KeptImage]] = {}
        self._last: dict[tuple[str, str], int] = {}  # the index of the last stage taking them
        self._wanted: dict[str, dict[tuple[str, str], Mapping[str, Any]]] = {}  # stage -> key -> where
        for index, stage in enumerate(manifest.stages):
            for source in stage.sources:
                key = _key(source)
                self._last[key] = index
                self._wanted.setdefault(source.stage, {})[key] = source.where

    def images(self, source: ImageSource) -> list[KeptImage]:
        """The images ``source`` takes, in order."""
        key = _key(source)
        kept = self._images.get(key)
        if kept is None:
            stage = self._manifest.stage(source.stage)
            into = self.wanted(stage)  # every source's on that stage, in the one pass
            deque(self.keep(stage, expand_stage(self._manifest, stage, self), into), maxlen=0)
            kept = into[key]
        return kept

    def wanted(self, stage: Stage) -> dict[tuple[str, str], list[KeptImage]]:
        """Empty lists for the images of ``stage`` that later stages take and that are not kept yet."""
        return {key: [] for key in self._wanted.get(stage.id, {}) if key not in self._images}

    def keep(
        self, stage: Stage, jobs: Iterable[Job], into: dict[tuple[str, str], list[KeptImage]]
    ) -> Iterator[Job]:
        """Pass ``jobs`` of ``stage`` through, keeping their images ``into`` those lists (from
        :meth:`wanted`); they are taken when the stage is through."""
        wheres = [(self._wanted[stage.id][key], kept) for key, kept in into.items()]
        specs: dict[str, Any] = {}
        for job in jobs:
            for where, kept in wheres:
                if not where or matches(job.vars, where):
                    spec = specs.get(job.model)
                    if spec is None:
                        spec = specs[job.model] = self._manifest.spec(job.model)
                    kept.extend((job.id, i, job.vars) for i in range(spec.images_per_prediction(job.input)))
            yield job
        self._images.update(into)

    def release(self, index: int) -> None:
        """Let go of the images no stage after the ``index``-th takes."""
        for key in [key for key in self._images if self._last.get(key, -1) <= index]:
            del self._images[key]


def _key(source: ImageSource) -> tuple[str, str]:
    return source.stage, ids.canonical_json(source.where)


def expand(manifest: Manifest) -> Iterator[Job]:
    """Every job of the manifest, stage by stage in topological order; deterministic."""
    upstream = Upstream(manifest)
    for index, stage in enumerate(manifest.stages):
        wanted = upstream.wanted(stage)
        jobs = expand_stage(manifest, stage, upstream)
        yield from upstream.keep(stage, jobs, wanted) if wanted else jobs
        upstream.release(index)


def stage_job_ids(manifest: Manifest) -> Iterator[tuple[str, str]]:
    """``(stage, job id)`` of every job, in order, in one pass (for counting what an output folder
    already has)."""
    return ((job.stage, job.id) for job in expand(manifest))


def expand_stage(manifest: Manifest, stage: Stage, upstream: Upstream | None = None) -> Iterator[Job]:
    """The jobs of one stage, with ids and seeds. Its upstream images come from ``upstream`` (computed
    there once), or without one by expanding its upstream stages again, lazily."""
    seeded: dict[str, bool] = {}  # model -> whether it takes a seed (a model without one gets none)
    for vars, combo, input, ups in rows(manifest, stage, full=True, upstream=upstream):
        model, version = stage.job_model(combo)
        takes_seed = seeded.get(model)
        if takes_seed is None:
            spec = manifest.spec(model)
            takes_seed = seeded[model] = not spec.known or "seed" in spec.inputs
        if "seed" not in input and takes_seed:
            input["seed"] = ids.derive_seed(manifest.base_seed, stage.id, seed_key(stage, combo, ups))
        needs = tuple(dict.fromkeys(u.job_id for u in ups))
        job_id = ids.job_id(model, version, input, needs)
        slug = ids.slugify(str(input.get("prompt") or stage.id), SLUG_LENGTH)
        yield Job(job_id, stage.id, model, version, input, vars, needs, slug)


def seed_key(stage: Stage, combo: Mapping[str, Any], ups: tuple[UpstreamImage, ...]) -> dict[str, Any]:
    """What a derived seed depends on besides the base seed and the stage: the job's own sweep values
    (without ``repeat: 0`` and the ``same_seed_across`` variables) and the upstream images it edits."""
    same_seed = stage.same_seed_across
    key = {k: v for k, v in combo.items() if k not in same_seed and not (k == REPEAT and v == 0)}
    if ups:
        key["upstream"] = [u.job_id if u.output == 0 else f"{u.job_id}#{u.output}" for u in ups]
    return key


def rows(manifest: Manifest, stage: Stage, *, full: bool, upstream: Upstream | None = None) -> Iterator[Row]:
    """``(vars, own sweep values, input, upstream images)`` for each job of ``stage``.

    With ``full=False`` (check mode) upstream images are placeholders and no seed is set.
    """
    base = stage.input
    template = stage.prompt
    input_vars = [n for n in stage.sweep.names if n in stage.input_vars]
    files = stage.files
    lists = stage.list_inputs
    slotted = [n for n, v in base.items() if isinstance(v, list) and any(_slot(x) is not None for x in v)]
    drop = _dropped_by_model(manifest, stage) if stage.model_varies else None
    renames = reference_renames(manifest, stage)
    for choices in _upstream_product(manifest, stage.sources, full, upstream):
        ups = tuple(u for choice in choices for u in choice)
        up_vars: dict[str, Any] = {}
        for choice in choices:
            up_vars.update(_choice_vars(choice))
        context = {**manifest.vars, **up_vars}
        refs = [
            [upstream_ref(u.job_id, u.output) if full else PLACEHOLDER_REF for u in choice]
            for choice in choices
        ]
        for combo in stage.sweep.combinations():
            input = dict(base)
            for source, images in zip(stage.sources, refs, strict=True):
                if source.slot is None:
                    input[source.input] = list(images) if source.input in lists else images[0]
            for name in slotted:
                input[name] = [r for x in base[name] for r in _fill(x, refs)]
            for name in input_vars:
                if name in combo:
                    value = combo[name]
                    hashes = files.get(name)
                    value = file_ref(value, hashes[value]) if hashes else value
                    input[name] = [value] if name in lists and not isinstance(value, list) else value
            if template is not None:
                try:
                    input["prompt"] = template.render({**context, **combo} if context else combo)
                except KeyError as exc:
                    raise MissingVariableError(stage, str(exc.args[0]), combo) from exc
            for name, (target, to_list) in renames.get(combo.get(MODEL_VAR), {}).items():
                if name in input and target not in input:
                    moved = _as_reference(input.pop(name), to_list)
                    if moved is not None:
                        input[target] = moved
            if drop is not None:
                for name in drop.get(combo.get(MODEL_VAR), ()):
                    input.pop(name, None)
            yield ({**up_vars, **combo} if up_vars else combo), combo, input, ups


def _slot(value: Any) -> int | None:
    return value.get(SLOT_KEY) if isinstance(value, Mapping) else None


def _fill(value: Any, refs: list[list[Mapping[str, Any]]]) -> list[Any]:
    slot = _slot(value)
    return [value] if slot is None else refs[slot]


def reference_renames(manifest: Manifest, stage: Stage) -> dict[Any, dict[str, tuple[str, bool]]]:
    """With a model axis: for each model of the stage (by its sweep value; None for the stage's own
    model), the reference inputs it lacks -> ``(the one it takes, whether that takes a list)``. Empty
    without a model axis."""
    if not stage.model_varies:
        return {}
    refs = {ref: stage.job_model({MODEL_VAR: ref})[0] for ref in stage.models}
    result: dict[Any, dict[str, tuple[str, bool]]] = {}
    for ref, name in [*refs.items(), (None, stage.model)]:
        spec = manifest.spec(name)
        target = spec.reference_input
        if target is not None:
            to_list = target in spec.list_image_inputs
            result[ref] = {n: (target, to_list) for n in catalog.REFERENCE_INPUTS if n != target}
    return result


def _as_reference(value: Any, to_list: bool) -> Any:
    """A reference image value for a list input or a one-image input; None for no image at all. Several
    images for a one-image input stay a list (the checks report it)."""
    if to_list:
        return value if isinstance(value, list) else [value]
    if isinstance(value, list):
        return value[0] if len(value) == 1 else (value or None)
    return value


def _dropped_by_model(manifest: Manifest, stage: Stage) -> dict[Any, frozenset[str]]:
    """For each model of the stage: the inputs it lacks that another model of the stage takes."""
    specs = {ref: manifest.spec(stage.job_model({MODEL_VAR: ref})[0]) for ref in stage.models}
    taken = {n for spec in specs.values() if spec.known for n in spec.inputs}
    return {ref: frozenset(taken - set(spec.inputs)) for ref, spec in specs.items() if spec.known} | {
        None: frozenset(taken - set(manifest.spec(stage.model).inputs))
    }


def _choice_vars(choice: tuple[UpstreamImage, ...]) -> Mapping[str, Any]:
    return choice[0].vars if choice else {}


def _upstream_product(
    manifest: Manifest, sources: tuple[ImageSource, ...], full: bool, upstream: Upstream | None
) -> Iterator[tuple[tuple[UpstreamImage, ...], ...]]:
    if not sources:
        yield ()
        return
    for choice in source_choices(manifest, sources[0], full=full, upstream=upstream):
        for rest in _upstream_product(manifest, sources[1:], full, upstream):
            yield (choice, *rest)


def source_choices(
    manifest: Manifest, source: ImageSource, *, full: bool, upstream: Upstream | None = None
) -> Iterator[tuple[UpstreamImage, ...]]:
    """What one source gives each job: one upstream image, or with ``group_by`` every image of a group
    (whose variables are then only the ``group_by`` ones)."""
    if source.group_by is None:
        for image in upstream_images(manifest, source, full=full, upstream=upstream):
            yield (image,)
        return
    groups: dict[str, list[UpstreamImage]] = {}
    for image in upstream_images(manifest, source, full=full, upstream=upstream):
        shared = {k: image.vars[k] for k in source.group_by if k in image.vars}
        groups.setdefault(ids.canonical_json(shared), []).append(
            UpstreamImage(image.input, image.job_id, image.output, shared)
        )
    for members in groups.values():
        yield tuple(members)


def upstream_images(
    manifest: Manifest, source: ImageSource, *, full: bool, upstream: Upstream | None = None
) -> Iterator[UpstreamImage]:
    """Each output image of the upstream stage's jobs whose variables match ``source.where`` (from
    ``upstream`` when given, in full mode)."""
    stage = manifest.stage(source.stage)
    if full and upstream is not None:
        for job_id, output, vars in upstream.images(source):
            yield UpstreamImage(source.input, job_id, output, vars)
        return
    if full:
        for job in expand_stage(manifest, stage):
            if not source.where or matches(job.vars, source.where):
                for i in range(manifest.spec(job.model).images_per_prediction(job.input)):
                    yield UpstreamImage(source.input, job.id, i, job.vars)
        return
    for vars, combo, input, _ in rows(manifest, stage, full=False):
        if not source.where or matches(vars, source.where):
            spec = manifest.spec(stage.job_model(combo)[0])
            for i in range(spec.images_per_prediction(input)):
                yield UpstreamImage(source.input, "", i, vars)


def count_jobs(manifest: Manifest) -> dict[str, int]:
    """Jobs per stage, computed arithmetically where possible (never building Job objects)."""
    return count_jobs_and_images(manifest)[0]


def count_jobs_and_images(
    manifest: Manifest, *, limit: int | None = None
) -> tuple[dict[str, int], dict[str, int]]:
    """Jobs and output images per stage. With ``limit``, stops once the total passes it."""
    jobs: dict[str, int] = {}
    images: dict[str, int] = {}
    for stage in manifest.stages:
        count = stage.sweep.count(limit)
        for source in stage.sources:
            if not source.where and source.group_by is None and source.stage in images:
                count *= images[source.stage]
            else:
                count *= sum(1 for _ in source_choices(manifest, source, full=False))
        jobs[stage.id] = count
        if limit is not None and sum(jobs.values()) > limit:
            break  # before _images, which may go through every job
        images[stage.id] = _images(manifest, stage, count)
    return jobs, images


def _images(manifest: Manifest, stage: Stage, jobs: int) -> int:
    if stage.model_varies:
        return sum(
            manifest.spec(stage.job_model(combo)[0]).images_per_prediction(input)
            for _, combo, input, _ in rows(manifest, stage, full=False)
        )
    spec = manifest.spec_for(stage.id)
    if "num_outputs" not in spec.inputs or jobs == 0:
        return jobs
    if "num_outputs" not in stage.input_vars:
        return jobs * spec.images_per_prediction(stage.input)
    return sum(spec.images_per_prediction(input) for _, _, input, _ in rows(manifest, stage, full=False))
