"""Resuming skips loading the jobs again only when the state holds exactly the manifest's jobs: same
manifest, same files it reads, a load that completed."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from test_jobs_expand_upstream import PINNED, count_ids

from flux_batch import load
from flux_batch.jobs.expand import expand, stage_job_ids
from flux_batch.jobs.fingerprint import manifest_fingerprint
from flux_batch.manifest.model import Manifest
from flux_batch.runner.folder import read_folder
from flux_batch.runner.session import ingest
from flux_batch.runner.state.store import Store, done_counts


def write(folder: Path, prompts: str = "a cat\na dog\n", guidance: str = "[2, 3]") -> Manifest:
    (folder / "prompts.txt").write_text(prompts)
    (folder / "m.yaml").write_text(
        textwrap.dedent(
            f"""\
            version: 1
            name: t
            stages:
              - id: gen
                model: black-forest-labs/flux-pro
                prompt: "{{subject}}"
                matrix: {{subject: {{file: prompts.txt}}, guidance: {guidance}}}
              - id: edit
                model: black-forest-labs/flux-kontext-pro
                prompt: "gold"
                input: {{input_image: {{from: gen}}}}
            """
        )
    )
    return load(folder / "m.yaml")


def load_jobs(store: Store, manifest: Manifest) -> bool:
    return ingest(
        store, ((j, 0.01) for j in expand(manifest)), retry_failed=False, reseed=False,
        fingerprint=manifest_fingerprint(manifest),
    )  # fmt: skip


def live(store: Store) -> list[tuple[str, int]]:
    return sorted(store._db.execute("SELECT id, seq FROM jobs WHERE live = 1").fetchall())


def test_the_same_manifest_is_not_loaded_twice(tmp_path: Path) -> None:
    manifest = write(tmp_path)
    store = Store.open(tmp_path / "out")
    assert load_jobs(store, manifest) is True
    before, columns = live(store), store.get_meta("columns")
    assert load_jobs(store, write(tmp_path)) is False  # loaded afresh from the same files
    assert live(store) == before and store.get_meta("columns") == columns
    store.close()
    counts = done_counts(
        tmp_path / "out", lambda: stage_job_ids(manifest), fingerprint=manifest_fingerprint(manifest)
    )
    assert counts is not None and counts("gen") == {"pending": 4} and counts("edit") == {"pending": 4}


def test_a_changed_manifest_or_file_it_reads_is_loaded(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "out")
    load_jobs(store, write(tmp_path))
    assert load_jobs(store, write(tmp_path, prompts="a cat\na fox\n")) is True  # the prompts file changed
    assert {j.id for j in expand(write(tmp_path, prompts="a cat\na fox\n"))} == {i for i, _ in live(store)}
    assert load_jobs(store, write(tmp_path, prompts="a cat\na fox\n", guidance="[2, 4]")) is True
    store.close()


def test_a_load_that_did_not_finish_is_done_again(tmp_path: Path) -> None:
    manifest = write(tmp_path)
    store = Store.open(tmp_path / "out")
    load_jobs(store, manifest)
    store.begin_ingest()  # a run killed while loading: half of the jobs live
    store.add_jobs((j, 0.01) for j in list(expand(manifest))[:3])
    assert load_jobs(store, manifest) is True
    assert len(live(store)) == 8
    store.close()


def test_a_state_whose_jobs_differ_from_its_fingerprint_is_loaded(tmp_path: Path) -> None:
    manifest = write(tmp_path)
    store = Store.open(tmp_path / "out")
    load_jobs(store, manifest)
    store._db.execute("UPDATE jobs SET seq = seq + 100")  # not where the manifest puts them
    assert load_jobs(store, manifest) is True
    assert [seq for _, seq in live(store)] != [] and min(seq for _, seq in live(store)) == 1
    store.close()


def test_a_changed_model_schema_file_is_loaded_again(tmp_path: Path) -> None:
    # The schema decides which inputs a job keeps (those the model lacks are left out), so its job ids.
    schema = {"type": "object", "properties": {"prompt": {"type": "string"}, "steps": {"type": "integer"}}}
    (tmp_path / "lora.json").write_text(json.dumps(schema), encoding="utf-8")
    (tmp_path / "m.yaml").write_text(
        "version: 1\nname: t\nschemas: {someone/lora: lora.json}\nstages:\n"
        "  - id: a\n    prompt: x\n    input: {steps: 4}\n"
        "    matrix: {model: [someone/lora, black-forest-labs/flux-2-flex]}\n",
        encoding="utf-8",
    )
    store = Store.open(tmp_path / "out")
    before = load(tmp_path / "m.yaml")
    assert load_jobs(store, before) is True
    assert load_jobs(store, load(tmp_path / "m.yaml")) is False
    del schema["properties"]["steps"]  # type: ignore[attr-defined]
    (tmp_path / "lora.json").write_text(json.dumps(schema), encoding="utf-8")
    manifest = load(tmp_path / "m.yaml")
    assert manifest_fingerprint(manifest) != manifest_fingerprint(before)
    assert load_jobs(store, manifest) is True
    assert {j.id for j in expand(manifest)} == {i for i, _ in live(store)}
    store.close()


def test_the_counts_of_an_edited_chain_are_its_jobs_in_the_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``plan`` and a resume count, for each stage of the manifest as it is now, the jobs the folder
    already has: one more animal (new jobs in every stage) leaves the others' counts as they were.
    The edited manifest is expanded once for every stage's count, not once per stage (and again for
    each stage's upstream stages: 208 ids for its 56 jobs)."""
    (tmp_path / "m.yaml").write_text(PINNED, encoding="utf-8")
    manifest = load(tmp_path / "m.yaml")
    store = Store.open(tmp_path / "out")
    load_jobs(store, manifest)
    done = {job.id for job in expand(manifest) if job.vars.get("animal") != "fox"}
    with store._db:
        store._db.executemany("UPDATE jobs SET status = 'succeeded' WHERE id = ?", [(i,) for i in done])
    store.close()
    held = {job.id for job in expand(manifest)}
    (tmp_path / "m.yaml").write_text(PINNED.replace("[cat, fox, owl]", "[cat, fox, owl, eel]"))
    edited = load(tmp_path / "m.yaml")
    made = count_ids(monkeypatch)
    folder = read_folder(tmp_path / "out", edited)
    assert folder.done is not None
    counts = {stage.id: folder.done(stage.id) for stage in edited.stages}
    made_by_count = len(made)
    expected: dict[str, Counter[str]] = {stage.id: Counter() for stage in edited.stages}
    jobs = list(expand(edited))
    for job in jobs:
        if job.id in held:
            expected[job.stage]["succeeded" if job.id in done else "pending"] += 1
    assert counts == expected and expected["gen"] == {"succeeded": 4, "pending": 2}
    assert sum(len(j.needs) == 0 for j in jobs) == 8 and made_by_count == len(jobs)
