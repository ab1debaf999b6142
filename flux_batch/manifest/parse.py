"""Turns a schema-valid manifest document into a :class:`Manifest`, checking what a schema cannot.

Semantic checks, each reported with its location: duplicate stage ids, unknown, self and cyclic stage
references, unknown template variables, zipped axes of different lengths, missing or empty data files and
globs, duplicate sweep values, variables defined twice, include/exclude and ``where`` rules naming unknown
variables, defaults that no stage's model takes. The files a sweep names are read here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flux_batch.durations import parse_duration
from flux_batch.errors import Issue
from flux_batch.jobs.ids import canonical_json
from flux_batch.jobs.job import is_ref
from flux_batch.manifest import graph, sweep
from flux_batch.manifest.api_url import BaseUrlError, check_base_url
from flux_batch.manifest.model import (
    DEFAULT_MAX_JOBS,
    MODEL_VAR,
    ApiSettings,
    ImageSource,
    Manifest,
    Stage,
)
from flux_batch.manifest.schema_files import load_schema_files
from flux_batch.manifest.template import TemplateError, compile_template
from flux_batch.manifest.yaml_loader import Document, JsonPath
from flux_batch.models import cache, catalog


def file_sha256(path: Path, shown: str = "") -> str:
    """The SHA-256 of a regular file's bytes, read in chunks (OSError for anything else)."""
    digest = hashlib.sha256()
    with sweep.open_regular(path, shown or str(path), binary=True) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cannot_read(written: str, exc: OSError) -> str:
    if isinstance(exc, sweep.NotRegularFileError):
        return str(exc)
    return f"cannot read {written}: {exc.strerror or exc}"


class _Parser:
    def __init__(self, doc: Document, base: Path, max_jobs: int | None = None) -> None:
        self.doc = doc
        self.base = base
        self.issues: list[Issue] = []
        self.data: dict[str, Any] = doc.data
        self.max_jobs = max_jobs or int(self.data.get("max_jobs", DEFAULT_MAX_JOBS))
        self.prices: dict[str, Any] = dict(self.data.get("prices", {}))
        self.warned_models: set[str] = set()
        self.file_hashes: dict[str, str] = {}
        self.broken: set[str] = set()  # variables whose values could not be read (no follow-on errors)
        # Stages (by index) with an error of their own: their jobs cannot be checked. None: no stage's
        # can (the stage graph itself is wrong).
        self.unsound: set[int] | None = set()
        self.schemas = load_schema_files(self, self.data.get("schemas", {}))

    def error(self, path: JsonPath, message: str, hint: str = "", *, key: bool = False) -> None:
        self._unsound(path)
        self.issues.append(self.doc.issue(path, message, hint, key=key))

    def _unsound(self, path: JsonPath) -> None:
        if self.unsound is not None and len(path) > 1 and path[0] == "stages" and isinstance(path[1], int):
            self.unsound.add(path[1])

    def warn(self, path: JsonPath, message: str, hint: str = "", *, key: bool = False) -> None:
        self.issues.append(self.doc.issue(path, message, hint, key=key, severity="warning"))

    def sweep_error(self, path: JsonPath, exc: sweep.SweepError) -> None:
        self._unsound(path)
        if exc.file and exc.line:
            shown = os.path.normpath(self.base / exc.file)
            self.issues.append(Issue(shown, exc.line, exc.column, "$", exc.message, exc.hint))
        else:
            self.error(path, exc.message, exc.hint)

    # -- top level -------------------------------------------------------------------------------------

    def manifest(self, path: Path) -> Manifest:
        data = self.data
        api = self.api(data.get("api", {}))
        stages = [self.stage(i, raw) for i, raw in enumerate(data["stages"])]
        ordered = self.order(stages)
        self.check_defaults(stages)
        retry = data.get("retry_failed", False)
        name = data["name"]
        # Relative to the manifest's folder, as every other path in it: running the manifest from
        # another folder must find the same output (and never start afresh and pay again).
        written = str(data.get("output", Path("out") / name))
        output = self.base / written
        document = {**data, "output": written}
        return Manifest(
            path=path,
            name=name,
            output=output,
            api=api,
            base_seed=int(data.get("seed", 0)),
            defaults=dict(data.get("defaults", {})),
            vars=dict(data.get("vars", {})),
            stages=tuple(ordered),
            max_jobs=self.max_jobs,
            max_cost_usd=data.get("max_cost_usd"),
            retry_failed=bool(retry),
            reseed_failed=bool(isinstance(retry, dict) and retry.get("reseed", False)),
            prices=self.prices,
            schemas=self.schemas,
            document=document,
            warnings=tuple(i for i in self.issues if i.severity == "warning"),
        )

    def api(self, raw: Mapping[str, Any]) -> ApiSettings:
        fields = {k: v for k, v in raw.items() if k != "deadline"}
        if "base_url" in raw:
            try:
                fields["base_url"] = check_base_url(raw["base_url"])
            except BaseUrlError as exc:
                self.error(("api", "base_url"), str(exc), exc.hint)
                del fields["base_url"]
            if raw.get("simulator"):
                self.warn(
                    ("api", "base_url"),
                    "base_url is not used: simulator is true",
                    "drop one; `run --base-url URL` or `run --no-simulator` overrides simulator: true",
                )
        if "deadline" in raw:
            try:
                fields["deadline_s"] = parse_duration(raw["deadline"])
            except ValueError:
                self.error(
                    ("api", "deadline"), f"{raw['deadline']!r} is not a duration", "write '30s', '5m' or 90"
                )
            else:
                if fields["deadline_s"] < 5:
                    self.error(("api", "deadline"), "the deadline must be at least 5 seconds")
        return ApiSettings(**fields)

    # -- stages ----------------------------------------------------------------------------------------

    def stage(self, index: int, raw: Mapping[str, Any]) -> Stage:
        at: JsonPath = ("stages", index)
        origins: dict[str, JsonPath] = {}
        factors = self.factors(at, raw, origins)
        repeat = int(raw.get("repeat", 1))
        names = [n for f in factors for n in f.names]
        self.rules(at, raw, names)
        built = sweep.Sweep(
            tuple(factors), tuple(raw.get("include", ())), tuple(raw.get("exclude", ())), repeat
        )
        for i, rule in enumerate(raw.get("include", ())):
            for key in rule:
                origins.setdefault(key, (*at, "include", i, key))
        model, version, refs = self.stage_models(at, raw, built, origins)
        specs = [self.spec(catalog.split_ref(r)[0] if catalog.MODEL_REF.match(r) else r) for r in refs]
        spec = specs[0] if len(specs) == 1 else _union(specs)
        template = None
        if "prompt" in raw:
            try:
                template = compile_template(raw["prompt"])
            except TemplateError as exc:
                self.error((*at, "prompt"), str(exc))
        literal, sources = self.inputs(at, raw, spec)
        input_names = set(spec.inputs) if spec.known else None
        used = set(template.names) if template else set()
        swept = [n for n in built.names if n != MODEL_VAR]
        if input_names is not None:
            input_vars = frozenset(n for n in swept if n in input_names)
        else:
            input_vars = frozenset(n for n in swept if n not in used and n != sweep.REPEAT)
        if template and ("prompt" in input_vars or "prompt" in literal):
            where = origins.get("prompt", (*at, "input", "prompt"))
            self.error(
                where,
                "the prompt is given twice: by the stage's prompt template and here",
                "keep one: rename the variable and use it as {name} in the template",
            )
        for name in swept:
            if (
                name not in input_vars
                and name not in used
                and name != sweep.REPEAT
                and input_names is not None
            ):
                hint = catalog.suggest(name, sorted(input_names))
                self.warn(
                    origins.get(name, at),
                    f"variable {name!r} is neither a {spec.name} input nor used in the prompt",
                    f"{hint} (an input)" if hint else "use it as {" + name + "} in the prompt, or drop it",
                )
        files = self.glob_files(origins, input_vars, spec, spec.name)
        same_seed = raw.get("same_seed_across", [])
        for i, name in enumerate(same_seed):
            if name not in built.names:
                self.error(
                    (*at, "same_seed_across", i),
                    f"{name!r} is not a sweep variable of this stage",
                    catalog.suggest(name, built.names),
                )
        for source in sources:
            if spec.known and source.group_by is not None and source.input not in spec.list_image_inputs:
                self.error(
                    self.source_path(at, raw, source),
                    f"group_by gives several images, but {source.input!r} takes one",
                    f"list inputs of {spec.name}: {', '.join(spec.list_image_inputs) or 'none'}",
                )
        lists = set(spec.list_image_inputs)
        lists.update(n for n, v in literal.items() if isinstance(v, list) and any(is_ref(x) for x in v))
        lists.update(s.input for s in sources if s.group_by is not None or s.slot is not None)
        needs = tuple(dict.fromkeys([*raw.get("needs", ()), *(s.stage for s in sources)]))
        own = set(raw.get("input", {})) | set(input_vars)
        return Stage(
            id=raw["id"],
            model=model,
            version=version,
            models=tuple(refs),
            needs=needs,
            product_axes=tuple(n for n in raw.get("matrix", {}) if origins.get(n) == (*at, "matrix", n)),
            var_names=built.names,
            prompt=template,
            input=literal,
            sources=tuple(sources),
            sweep=built,
            input_vars=input_vars,
            files=files,
            same_seed_across=frozenset(same_seed),
            index=index,
            origins=origins,
            own_inputs=frozenset(own),
            list_inputs=frozenset(lists),
        )

    def spec(self, model: str) -> catalog.ModelSpec:
        return catalog.get_model(model, self.prices.get(model), self.schemas)

    def stage_models(
        self, at: JsonPath, raw: Mapping[str, Any], built: sweep.Sweep, origins: Mapping[str, JsonPath]
    ) -> tuple[str, str | None, list[str]]:
        """The stage's model and version, and every model reference its jobs use (checked)."""
        swept: list[Any] = []
        if MODEL_VAR in built.names:
            seen: dict[str, None] = {}
            for factor in built.factors:
                if MODEL_VAR in factor.names:
                    column = factor.names.index(MODEL_VAR)
                    seen.update(
                        (str(row[column]), None) for row in factor.rows if row[column] is not sweep.MISSING
                    )
                    swept.extend(row[column] for row in factor.rows)
            for rule in built.include:
                if MODEL_VAR in rule:
                    seen[str(rule[MODEL_VAR])] = None
                    swept.append(rule[MODEL_VAR])
            refs = list(seen)
        else:
            refs = []
        written = raw.get("model")
        if written is None and not refs:
            self.error(
                at,
                "the stage has no model",
                "write model: owner/name, or sweep it: matrix: {model: [owner/name, ...]}",
            )
            written = "unknown/unknown"
        checked: list[str] = []
        for ref in ([written] if written is not None else []) + refs:
            where = (*at, "model") if ref == written and written is not None else origins.get(MODEL_VAR, at)
            if not isinstance(ref, str) or not catalog.MODEL_REF.match(ref):
                self.error(
                    where, f"{ref!r} is not a model", "write owner/name or owner/name:<64-hex version>"
                )
                continue
            if ref not in checked:
                checked.append(ref)
                self.check_model(where, catalog.split_ref(ref)[0])
        if not checked:
            return "unknown/unknown", None, ["unknown/unknown"]
        uses = checked if refs else checked[:1]
        if written is not None and refs and all(v is not sweep.MISSING for v in swept):
            uses = [r for r in checked if r in refs]  # every job names its model: the stage's is unused
        model, version = catalog.split_ref(uses[0]) if uses else ("unknown/unknown", None)
        return model, version, uses or ["unknown/unknown"]

    def check_model(self, where: JsonPath, model: str) -> None:
        spec = self.spec(model)
        if spec.known:
            return
        known = [*catalog.known_models(), *self.schemas, *cache.cached_names()]
        typo = catalog.near_miss(model, known)
        if typo:
            self.error(where, f"{model} is not a known model", f"did you mean {typo!r}?")
            return
        if model not in self.warned_models:
            self.warned_models.add(model)
            self.warn(
                where,
                f"{model} is not a known model: its inputs are not checked",
                f"fetch its schema with `flux-batch models --fetch {model}` (or name a file under schemas:), "
                f"and price it with prices: {{{model}: 0.01}}",
            )

    def factors(
        self, at: JsonPath, raw: Mapping[str, Any], origins: dict[str, JsonPath]
    ) -> list[sweep.Factor]:
        factors: list[sweep.Factor] = []

        def define(name: str, where: JsonPath) -> bool:
            if name == sweep.REPEAT:
                self.error(
                    where, "'repeat' is reserved for the repeat index", "use repeat: N on the stage", key=True
                )
                return False
            if name in origins:
                self.error(
                    where,
                    f"variable {name!r} is already defined (at {self.doc.where(origins[name])[0]})",
                    "give each variable one source",
                    key=True,
                )
                return False
            origins[name] = where
            return True

        for name, source in raw.get("matrix", {}).items():
            where = (*at, "matrix", name)
            values = self.axis_values(where, source)
            if values is None:
                self.broken.add(name)
            elif define(name, where):
                factors.append(sweep.axis(name, values))
        for g, group in enumerate(raw.get("zip", ())):
            columns: dict[str, list[Any]] = {}
            for name, source in group.items():
                values = self.axis_values((*at, "zip", g, name), source)
                if values is None:
                    self.broken.add(name)
                elif define(name, (*at, "zip", g, name)):
                    columns[name] = values
            if len(columns) == len(group):
                try:
                    factors.append(sweep.zipped(columns))
                except sweep.SweepError as exc:
                    self.sweep_error((*at, "zip", g), exc)
        if "cases" in raw:
            rows = self.cases((*at, "cases"), raw["cases"])
            if rows:
                factor = sweep.table(rows)
                if all(define(name, (*at, "cases")) for name in factor.names):
                    factors.append(factor)
        return factors

    def axis_values(self, where: JsonPath, source: Any) -> list[Any] | None:
        try:
            if isinstance(source, list):
                seen: dict[Any, int] = {}
                for i, value in enumerate(source):
                    key = canonical_json(value)  # 3 and 3.0 are one request to the API, and one job id
                    if key in seen:
                        self.error(
                            (*where, i),
                            f"{value!r} is listed twice (also at index {seen[key]})",
                            "each value once; use repeat: N for more images of the same",
                        )
                    seen[key] = i
                return list(source)
            if "range" in source:
                r = source["range"]
                bounds = (r["start"], r["stop"], r.get("step", 1), r.get("inclusive", True))
                count = sweep.range_count(*bounds)  # before building anything: 10**11 values would not fit
                if count > self.max_jobs:
                    self.error(
                        where,
                        f"the range has {count:,} values, more than max_jobs ({self.max_jobs:,})",
                        "narrow the range or raise its step (or raise the limit with max_jobs or --max-jobs)",
                    )
                    return None
                return sweep.number_range(*bounds)
            if "file" in source:
                where = (*where, "file")
                values, repeats = sweep.read_lines(self.base / source["file"], source["file"])
                if repeats:
                    line, first = repeats[0]
                    self.warn(
                        where,
                        f"{len(repeats)} repeated line(s) in {source['file']} skipped "
                        f"(line {line} repeats line {first})",
                        "use repeat: N for more images of the same",
                    )
                return list(values)
            paths = sweep.glob_files(self.base, source["glob"])
            if not paths:
                self.error(
                    (*where, "glob"),
                    f"no files match {source['glob']!r}",
                    f"paths are relative to the manifest's folder, {self.base.resolve()}",
                )
                return None
            return list(paths)
        except sweep.SweepError as exc:
            self.sweep_error(where, exc)
            return None

    def cases(self, where: JsonPath, raw: Any) -> list[dict[str, Any]]:
        if isinstance(raw, list):
            rows = [dict(r) for r in raw]
            seen: dict[str, int] = {}
            for i, row in enumerate(rows):
                key = canonical_json(row)
                if key in seen:
                    self.error((*where, i), f"case {i} repeats case {seen[key]}", "each case once")
                seen.setdefault(key, i)
            return rows
        try:
            rows = sweep.read_rows(self.base / raw["file"], raw["file"])
        except sweep.SweepError as exc:
            self.sweep_error((*where, "file"), exc)
            return []
        unique: dict[str, dict[str, Any]] = {}
        for row in rows:
            unique.setdefault(canonical_json(row), row)
        if len(unique) < len(rows):
            self.warn((*where, "file"), f"{len(rows) - len(unique)} repeated row(s) in {raw['file']} skipped")
        return list(unique.values())

    def rules(self, at: JsonPath, raw: Mapping[str, Any], names: list[str]) -> None:
        for i, rule in enumerate(raw.get("exclude", ())):
            for key in rule:
                if key not in names:
                    self.error(
                        (*at, "exclude", i, key),
                        f"exclude names {key!r}, which is not a sweep variable",
                        catalog.suggest(key, names) or f"variables: {', '.join(names) or 'none'}",
                        key=True,
                    )

    def inputs(
        self, at: JsonPath, raw: Mapping[str, Any], spec: catalog.ModelSpec
    ) -> tuple[dict[str, Any], list[ImageSource]]:
        literal: dict[str, Any] = {}
        defaults = self.data.get("defaults", {})
        for name, value in defaults.items():
            if isinstance(value, dict) and "from" in value:
                continue  # refused once, by check_defaults
            if not spec.known or name in spec.inputs:
                literal[name] = self.literal(("defaults", name), value)
        sources: list[ImageSource] = []
        for name, value in raw.get("input", {}).items():
            where = (*at, "input", name)
            if isinstance(value, dict) and "from" in value:
                self.image_input(where, name, spec)
                sources.append(dataclasses.replace(self.source(value), input=name))
                literal.pop(name, None)
                continue
            if isinstance(value, list) and any(isinstance(x, dict) for x in value):
                self.image_input(where, name, spec, listed=True)
                literal[name] = self.image_list(where, name, value, sources)
                continue
            literal[name] = self.literal(where, value)
        return {k: v for k, v in literal.items() if v is not None}, sources

    def image_input(
        self, where: JsonPath, name: str, spec: catalog.ModelSpec, *, listed: bool = False
    ) -> None:
        """An error unless ``name`` is an image input (``listed``: one taking a list) of the model."""
        takers = spec.list_image_inputs if listed else spec.image_inputs
        kind = "list image input" if listed else "image input"
        if spec.known and name not in takers:
            self.error(
                where,
                f"{name!r} is not {'a' if listed else 'an'} {kind} of {spec.name}",
                f"{kind}s: {', '.join(takers) or 'none'}",
                key=True,
            )

    def source(self, value: Mapping[str, Any], slot: int | None = None) -> ImageSource:
        group = value.get("group_by")
        return ImageSource(
            "",
            value["from"],
            dict(value.get("where", {})),
            None if group is None else tuple(group),
            slot,
        )

    def image_list(
        self, where: JsonPath, name: str, value: list[Any], sources: list[ImageSource]
    ) -> list[Any]:
        """A list input's elements: URLs, files and globs as they are, upstream images as slots."""
        elements: list[Any] = []
        for i, element in enumerate(value):
            if isinstance(element, dict) and "from" in element:
                source = dataclasses.replace(self.source(element, len(sources)), input=name)
                sources.append(source)
                elements.append({"$slot": source.slot})
            elif isinstance(element, dict) and "glob" in element:
                paths = sweep.glob_files(self.base, element["glob"])
                if not paths:
                    self.error(
                        (*where, i, "glob"),
                        f"no files match {element['glob']!r}",
                        f"paths are relative to the manifest's folder, {self.base.resolve()}",
                    )
                for path in paths:
                    elements.append(self.literal((*where, i, "glob"), {"file": path}))
            else:
                elements.append(self.literal((*where, i), element))
        return elements

    def source_path(self, at: JsonPath, raw: Mapping[str, Any], source: ImageSource) -> JsonPath:
        value = raw.get("input", {}).get(source.input)
        if isinstance(value, list) and source.slot is not None:
            for i, element in enumerate(value):
                if isinstance(element, dict) and element.get("from") == source.stage:
                    return (*at, "input", source.input, i)
        return (*at, "input", source.input)

    def literal(self, where: JsonPath, value: Any) -> Any:
        if isinstance(value, dict) and "file" in value:
            written = value["file"]
            try:
                digest = file_sha256(self.base / written, written)
            except OSError as exc:
                self.error(
                    (*where, "file"),
                    _cannot_read(written, exc),
                    "paths are relative to the manifest's folder",
                )
                digest = ""
            return {"$file": written, "sha256": digest}
        return value

    def glob_files(
        self, origins: Mapping[str, JsonPath], input_vars: frozenset[str], spec: catalog.ModelSpec, model: str
    ) -> dict[str, dict[str, str]]:
        """For each globbed variable that sets an input: the sha256 of each of its files, by path."""
        files: dict[str, dict[str, str]] = {}
        for name, where in origins.items():
            node = self.doc_value(where)
            if not (isinstance(node, dict) and "glob" in node) or name not in input_vars:
                continue
            if spec.known and name not in spec.image_inputs:
                self.error(
                    where,
                    f"a glob gives local files, but {name!r} is not an image input of {model}",
                    f"image inputs: {', '.join(spec.image_inputs) or 'none'}",
                    key=True,
                )
                continue
            hashes: dict[str, str] = {}
            for path in sweep.glob_files(self.base, node["glob"]):
                if path not in self.file_hashes:
                    try:
                        self.file_hashes[path] = file_sha256(self.base / path, path)
                    except OSError as exc:
                        self.error((*where, "glob"), _cannot_read(path, exc))
                        self.file_hashes[path] = ""
                hashes[path] = self.file_hashes[path]
            files[name] = hashes
        return files

    def doc_value(self, path: JsonPath) -> Any:
        node: Any = self.data
        for part in path:
            node = node[part]
        return node

    # -- across stages ---------------------------------------------------------------------------------

    def order(self, stages: list[Stage]) -> list[Stage]:
        by_id: dict[str, Stage] = {}
        for stage in stages:
            if stage.id in by_id:
                self.unsound = None
                first = self.doc.where(("stages", by_id[stage.id].index, "id"))[0]
                self.error(
                    ("stages", stage.index, "id"),
                    f"stage id {stage.id!r} is used twice (first on line {first})",
                    "give every stage its own id",
                )
            else:
                by_id[stage.id] = stage
        needs = {s.id: s.needs for s in by_id.values()}
        problems = graph.check_graph(needs)
        if problems:
            self.unsound = None
        for p in problems:
            stage = by_id[p.stage]
            self.error(self.reference_path(stage, p.ref), p.message, p.hint)
        if problems:
            return stages
        ordered = [by_id[s] for s in graph.topological_order(needs)]
        visible: dict[str, tuple[str, ...]] = {}
        global_vars = set(self.data.get("vars", {}))
        for stage in ordered:
            upstream: list[str] = []
            for source in stage.sources:
                names = visible[source.stage]
                upstream.extend(names)
                for key in source.where:
                    if key not in names:
                        self.error(
                            (*self.reference_path(stage, source.stage)[:-1], "where", key),
                            f"stage {source.stage!r} has no variable {key!r}",
                            catalog.suggest(key, names) or f"its variables: {', '.join(names) or 'none'}",
                            key=True,
                        )
            visible[stage.id] = tuple(dict.fromkeys([*upstream, *stage.var_names]))
            if stage.prompt:
                known = set(visible[stage.id]) | global_vars | self.broken
                for name in stage.prompt.names:
                    if name not in known:
                        self.error(
                            ("stages", stage.index, "prompt"),
                            f"unknown variable {{{name}}} in the prompt",
                            catalog.suggest(name, sorted(known))
                            or "define it under vars or as a sweep variable; known: "
                            + ", ".join(sorted(known)),
                        )
        return [
            Stage(**{**s.__dict__, "var_names": visible[s.id]}) if visible.get(s.id) != s.var_names else s
            for s in ordered
        ]

    def reference_path(self, stage: Stage, ref: str) -> JsonPath:
        raw = self.data["stages"][stage.index]
        for name, value in raw.get("input", {}).items():
            if isinstance(value, dict) and value.get("from") == ref:
                return ("stages", stage.index, "input", name, "from")
        needs = raw.get("needs", [])
        if ref in needs:
            return ("stages", stage.index, "needs", needs.index(ref))
        return ("stages", stage.index)

    def check_defaults(self, stages: list[Stage]) -> None:
        for key, value in self.data.get("defaults", {}).items():
            if isinstance(value, dict) and "from" in value:
                self.error(
                    ("defaults", key, "from"),
                    "an image from a stage cannot be a default (every stage would take it, even its own)",
                    f"write {key}: {{from: {value['from']}}} in the input of the stage that edits its images",
                )
        takers = [
            self.spec(catalog.split_ref(r)[0]) for s in stages for r in s.models if catalog.MODEL_REF.match(r)
        ]
        if any(not spec.known for spec in takers):
            return
        names = sorted({n for spec in takers for n in spec.inputs})
        for key in self.data.get("defaults", {}):
            if key not in names:
                self.error(
                    ("defaults", key),
                    f"no stage's model takes the input {key!r}",
                    catalog.suggest(key, names) or "see `flux-batch models`",
                    key=True,
                )


def _union(specs: list[catalog.ModelSpec]) -> catalog.ModelSpec:
    """One spec standing for every model of a stage with a model axis, for the checks made per stage:
    it takes every input one of them takes (each job is then checked against its own model)."""
    if not all(spec.known for spec in specs):
        return catalog.ModelSpec(", ".join(s.name for s in specs), "", None, "any")
    properties: dict[str, Any] = {}
    for spec in specs:
        for name, rule in spec.inputs.items():
            properties.setdefault(name, rule)
    images = tuple(dict.fromkeys(n for spec in specs for n in spec.image_inputs))
    schema = {"properties": properties}
    return catalog.ModelSpec(", ".join(s.name for s in specs), "", None, "any", images, schema)


def parse(
    doc: Document, path: Path, *, max_jobs: int | None = None
) -> tuple[Manifest, list[Issue], set[int] | None]:
    """The manifest in ``doc`` (read from ``path``), every issue found (errors and warnings), and the
    indexes of the stages with errors of their own (None when the stage graph itself is wrong).

    ``max_jobs`` overrides the manifest's job limit (a range with more values is refused unbuilt)."""
    parser = _Parser(doc, path.parent, max_jobs)
    manifest = parser.manifest(path)
    return manifest, parser.issues, parser.unsound
