"""From a loaded manifest and the caller's choices to everything a run needs, deciding nothing twice.

``run`` from Python and ``flux-batch run`` take the same path: the caller's settings put over the
manifest's ``api:`` (:func:`choose_api`), the token read, the output folder read without changing it and
its owner checked, the plan built against what the folder already holds, the budget gate, and the record
``run.json`` keeps. What is left to the caller is what only a person can do: answer a question
(:attr:`Prepared.questions`) and watch progress.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from flux_batch.errors import InputError, MissingTokenError, UsageError
from flux_batch.jobs import Job
from flux_batch.jobs.checks import check_record
from flux_batch.jobs.expand import expand
from flux_batch.jobs.ids import canonical_json
from flux_batch.jobs.plan import Plan, build_plan, job_cost
from flux_batch.jobs.status import FAILED, JobStatus
from flux_batch.manifest import ApiSettings, Manifest
from flux_batch.manifest.api_url import DEFAULT_BASE_URL, host_of, is_loopback, is_replicate
from flux_batch.models import catalog as models
from flux_batch.models.catalog import ModelSpec
from flux_batch.models.pricing import Price
from flux_batch.runner.executor import RunSettings
from flux_batch.runner.folder import Folder, check_owner, owner_record, read_folder
from flux_batch.runner.session import ApiTarget, RunInfo
from flux_batch.runner.state.store import STATE_FILE

#: Where requests to the built-in (in-process) simulator go; nothing leaves the process.
SIMULATOR_URL = "http://simulator.local/v1"


class ApiFlags(Protocol):
    """What a caller may put over the manifest's ``api:`` (None, or False: not given)."""

    @property
    def simulator(self) -> bool: ...

    @property
    def no_simulator(self) -> bool: ...

    @property
    def base_url(self) -> str | None: ...

    @property
    def create_rpm(self) -> float | None: ...

    @property
    def other_rpm(self) -> float | None: ...

    @property
    def max_in_flight(self) -> int | None: ...

    @property
    def wait(self) -> int | None: ...


@dataclass(frozen=True)
class RunChoices:
    """The caller's choices for one run; every field left at its default defers to the manifest."""

    out: Path | None = None
    simulator: bool = False
    no_simulator: bool = False
    base_url: str | None = None
    token: str | None = None
    create_rpm: float | None = None
    other_rpm: float | None = None
    max_in_flight: int | None = None
    wait: int | None = None
    max_cost: float | None = None
    up_to_budget: bool = False
    retry_failed: bool = False
    reseed: bool = False
    switch_manifest: bool = False
    cancel_on_interrupt: bool = False


@dataclass(frozen=True)
class ApiChoice:
    """The manifest's ``api:`` settings with the caller's put over them (``settings``), and where the base
    URL came from (``base_url_from``: ``"command line"``, ``"manifest"`` or ``"default"``)."""

    settings: ApiSettings
    base_url_from: str

    @property
    def token_leaves_for_another_host(self) -> bool:
        """True when the manifest, not the user's own command line, sends the token to a host that is
        neither Replicate's API nor this machine: that needs the user's confirmation (or ``--yes``)."""
        api = self.settings
        return (
            not api.simulator
            and self.base_url_from == "manifest"
            and not is_replicate(api.base_url)
            and not is_loopback(api.base_url)
        )


def choose_api(args: ApiFlags, api: ApiSettings) -> ApiChoice:
    """The manifest's ``api:`` settings with every setting the caller gave put over them.

    ``base_url`` and ``no_simulator`` mean the real API (or a proxy) even when the manifest says
    ``simulator: true``; ``simulator`` means the simulator whatever the manifest says. A setting of 0 is a
    value, not "unset" (``wait=0`` does not hold the create call).
    """
    if args.simulator and (args.base_url or args.no_simulator):
        other = "--base-url" if args.base_url else "--no-simulator"
        raise UsageError(f"--simulator and {other} contradict each other: give one of them")
    if args.base_url:
        url_from = "command line"
    elif api.base_url != DEFAULT_BASE_URL:
        url_from = "manifest"
    else:
        url_from = "default"
    given: dict[str, Any] = {
        "base_url": args.base_url,
        "create_rpm": args.create_rpm,
        "other_rpm": args.other_rpm,
        "max_in_flight": args.max_in_flight,
        "wait": args.wait,
    }
    settings = dataclasses.replace(
        api,
        simulator=bool(args.simulator or (api.simulator and not (args.base_url or args.no_simulator))),
        **{name: value for name, value in given.items() if value is not None},
    )
    return ApiChoice(settings, url_from)


def read_token(env_var: str, environ: Mapping[str, str]) -> str:
    """The API token from ``environ[env_var]``, stripped; a clear error when it is unset, or holds a
    character an HTTP header cannot carry. The message never contains the token."""
    return check_token(environ.get(env_var, ""), env_var)


def check_token(token: str, env_var: str) -> str:
    """``token`` stripped, or an error naming ``env_var`` (never the token) if it cannot be sent."""
    token = token.strip()
    if not token:
        raise MissingTokenError(env_var)
    for position, char in enumerate(token, start=1):
        if not 0x21 <= ord(char) <= 0x7E:
            what = (
                "a line break"
                if char in "\r\n"
                else "a space or control character"
                if ord(char) < 0x80
                else "a non-ASCII character"
            )
            raise InputError(
                f"the API token in {env_var} has {what} at character {position}, which cannot be sent in "
                f"a request header: set {env_var} to the token alone (export {env_var}=r8_...)"
            )
    return token


@dataclass(frozen=True)
class Prepared:
    """A run ready to start: the plan, where it goes, the folder as found, and what to ask first.

    ``notes`` are lines for the user before anything is sent (warnings, the API host, failed jobs left as
    they are); ``questions`` what the user must agree to (the token leaving for a host the manifest
    chose; a cost above ``api.confirm_above_usd``), each ``(kind, question)`` with kind ``"host"`` or
    ``"cost"``.
    """

    manifest: Manifest
    plan: Plan
    folder: Folder
    settings: RunSettings
    target: ApiTarget
    info: RunInfo
    retry_failed: bool
    reseed: bool
    notes: tuple[str, ...]
    questions: tuple[tuple[str, str], ...]

    @property
    def simulator(self) -> bool:
        return self.manifest.api.simulator

    @property
    def out_dir(self) -> Path:
        return self.settings.out_dir

    def jobs(self) -> Iterator[tuple[Job, float | None]]:
        """The manifest's jobs with their estimated cost, expanded lazily (never all in memory)."""
        specs: dict[str, ModelSpec] = {}
        for job in expand(self.manifest):
            spec = specs.get(job.model)
            if spec is None:
                spec = specs[job.model] = self.manifest.spec(job.model)
            yield job, job_cost(job, spec)

    def simulated_models(self) -> tuple[ModelSpec, ...]:
        """The models of the manifest the simulator does not have built in: from the manifest's schema
        files or the cache of fetched ones, or, with no schema at all, taking any input."""
        from flux_batch.simulator.catalog import permissive

        specs = []
        for name in self.manifest.model_names():
            if name in models.known_models():
                continue
            spec = self.manifest.spec(name)
            specs.append(spec if spec.known else permissive(name))
        return tuple(specs)


def prepare(
    manifest: Manifest,
    choices: RunChoices,
    environ: Mapping[str, str],
    *,
    reload: Callable[[], Manifest] | None = None,
    http: Callable[[int], httpx.AsyncClient] | None = None,
) -> Prepared:
    """Everything a run of ``manifest`` needs, checked before anything is sent; raises the
    :mod:`flux_batch.errors` error that says why not (a contradiction, no token, another manifest's
    folder, over the budget). With a token for a host it may go to, the schema of every model without
    one is fetched first (over ``http(connections)``), and the manifest read again by ``reload`` to check
    those models' inputs."""
    retry_failed = bool(choices.retry_failed or manifest.retry_failed)
    if choices.reseed and not retry_failed:
        raise UsageError(
            "--reseed only applies to retried jobs: add --retry-failed (or set retry_failed: true in "
            "the manifest)"
        )
    choice = choose_api(choices, manifest.api)
    api = choice.settings
    token = None
    if not api.simulator:
        token = (
            check_token(choices.token, api.token_env)
            if choices.token is not None
            else read_token(api.token_env, environ)
        )
    fetched: list[str] = []
    if token and not choice.token_leaves_for_another_host:
        from flux_batch.runner.http_client import http_client
        from flux_batch.runner.model_fetch import fetch_unknown

        client = (http or http_client)(4)
        if fetch_unknown(manifest, client, api.base_url, token, fetched.append) and reload:
            manifest = reload()  # now checking those models' inputs
    max_cost = choices.max_cost if choices.max_cost is not None else manifest.max_cost_usd
    manifest = dataclasses.replace(manifest, api=api, max_cost_usd=max_cost)
    out_dir = Path(choices.out) if choices.out else manifest.output
    if not choices.out:
        refuse_moved_output(manifest)
    folder = read_folder(out_dir, manifest)
    check_owner(folder, manifest, switch=choices.switch_manifest)
    plan = build_plan(
        manifest, done=folder.done, spent_usd=folder.spent_usd, retry_failed=retry_failed, output=str(out_dir)
    )
    if plan.over_budget and not choices.up_to_budget:
        raise UsageError(budget_refusal(plan))
    notes = [*fetched, *(w.render() for w in manifest.warnings)]
    notes.append(f"flux-batch: {api_line(plan)}")
    left = 0 if retry_failed else sum((s.done or {}).get(k, 0) for s in plan.stages for k in FAILED)
    if left:
        notes.append(
            f"flux-batch: {left:,} jobs failed in an earlier run and are left as they are: add "
            "--retry-failed to run them again (with --reseed under new seeds)"
        )
    questions = []
    if choice.token_leaves_for_another_host:
        questions.append(("host", host_question(api)))
    if plan.todo_cost_usd > api.confirm_above_usd and not api.simulator:
        succeeded = sum((s.done or {}).get(JobStatus.SUCCEEDED, 0) for s in plan.stages)
        questions.append(
            (
                "cost",
                f"{plan.todo_jobs:,} jobs to do ({succeeded:,} already done), estimated "
                f"${plan.todo_cost_usd:,.2f} for them. Run?",
            )
        )
    settings = RunSettings(
        out_dir=out_dir,
        base_dir=manifest.path.parent,
        max_in_flight=api.max_in_flight,
        wait=api.wait,
        deadline_s=api.deadline_s,
        ambiguous_create=api.ambiguous_create,
        max_cost_usd=max_cost,
        cancel_on_interrupt=choices.cancel_on_interrupt,
        prices=model_prices(manifest),
    )
    target = ApiTarget(
        base_url=SIMULATOR_URL if api.simulator else api.base_url,
        token="simulator" if api.simulator else token,
        create_rpm=api.create_rpm,
        other_rpm=api.other_rpm,
        burst=api.burst,
    )
    return Prepared(
        manifest=manifest,
        plan=plan,
        folder=folder,
        settings=settings,
        target=target,
        info=run_info(manifest, plan),
        retry_failed=retry_failed,
        reseed=bool(choices.reseed or manifest.reseed_failed),
        notes=tuple(notes),
        questions=tuple(questions),
    )


def model_prices(manifest: Manifest) -> dict[str, Price]:
    """The price of each model the manifest's jobs use (the manifest's own prices applied)."""
    return {
        name: price for name in manifest.model_names() if (price := manifest.spec(name).price) is not None
    }


def run_info(manifest: Manifest, plan: Plan) -> RunInfo:
    """What ``run.json`` records of the manifest, its plan and stages, and whose folder it is."""
    try:
        digest = hashlib.sha256(manifest.path.read_bytes()).hexdigest()
    except OSError:  # built in code (flux_batch.loads): the document stands for the file
        digest = hashlib.sha256(canonical_json(manifest.document).encode()).hexdigest()
    return RunInfo(
        manifest={"path": str(manifest.path.resolve()), "sha256": digest, "document": manifest.document},
        plan=plan.to_json(),
        stages=tuple(
            {
                "id": s.id,
                "model": s.model,
                "needs": list(s.needs),
                "vars": list(s.var_names),
                "product_axes": list(s.product_axes),
            }
            for s in manifest.stages
        ),
        owner=owner_record(manifest),
        checked=check_record(manifest),
    )


def api_line(plan: Plan) -> str:
    """Where the requests go and which token goes with them (never the token itself)."""
    api = plan.api
    if api.get("simulator"):
        return "API: the built-in simulator (free: no token, nothing billed)"
    return f"API: {api['base_url']} (token from ${api['token_env']})"


def host_question(api: ApiSettings) -> str:
    """What the user is asked before the token leaves for a host the manifest chose."""
    return (
        f"the manifest sends the API token in ${api.token_env} to {host_of(api.base_url)}, which is not "
        "Replicate's API"
    )


def budget_refusal(plan: Plan) -> str:
    """Why a run refuses to start over the cost cap, and the ways on."""
    return (
        f"over the budget: {budget_figures(plan)} is more than the {exact_money(plan.max_cost_usd or 0.0)} "
        "cap (max_cost_usd or --max-cost); nothing submitted: raise the cap, shrink the sweep, or add "
        "--up-to-budget to run jobs until the cap"
    )


def budget_figures(plan: Plan) -> str:
    """What the budget is checked against: the folder's spend so far plus the work still to do."""
    todo = f"{exact_money(plan.todo_cost_usd)} estimated for the {plan.todo_jobs:,} jobs to do"
    if not plan.spent_usd:
        return todo
    total = exact_money(plan.spent_usd + plan.todo_cost_usd)
    return f"{exact_money(plan.spent_usd)} already spent in {plan.output} + {todo} = {total}"


def exact_money(value: float) -> str:
    """Dollars to the cent, or to the hundredth of a cent where cents would hide a difference."""
    cents = f"${value:,.2f}"
    return cents if abs(round(value, 2) - value) < 1e-9 else f"${value:,.4f}".rstrip("0")


def refuse_moved_output(manifest: Manifest) -> None:
    """A relative ``output:`` used to be taken from the working directory: rather than start afresh (and
    pay again) beside a folder that an earlier run left there, say where it is."""
    written = Path(str(manifest.document.get("output", "")))
    new = manifest.output
    if written.is_absolute() or not written.parts or (new / STATE_FILE).exists():
        return
    if (written / STATE_FILE).exists() and written.resolve() != new.resolve():
        raise UsageError(
            f"{written} holds an earlier run of this manifest, but its output folder is now {new} "
            "(a relative output: is taken from the manifest's folder, not the working directory): "
            f"resume it with --out {written}, or move it to {new}; nothing submitted"
        )
