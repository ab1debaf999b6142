"""Exports loaded with each format's own reader: counts, image bytes against the recorded sha256,
metadata, byte-identical repeats, bad samples and near-duplicates left out, incremental exports, and an
interrupted export that leaves no shard looking complete."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from export_folder import Folder, build_folder

from flux_batch.cli import main
from flux_batch.errors import UsageError
from flux_batch.export import ExportOptions, export
from flux_batch.export import formats as formats_module
from flux_batch.export.record import RECORD

FORMATS = ("webdataset", "parquet", "imagefolder")
#: About 20 s in all (``datasets`` loads); the pure parts and flags are tested quickly beside.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Folder:
    return build_folder(tmp_path_factory.mktemp("run") / "out", 60, blank=3, wrong_size=2, duplicates=4)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def loaded(fmt: str, to: Path) -> list[tuple[str, bytes, dict]]:
    """``(key, image bytes, row)`` of every sample, read by the format's own reader."""
    out = []
    if fmt == "webdataset":
        for sample in wds.WebDataset(sorted(str(p) for p in (to / "data").glob("*.tar")), shardshuffle=False):
            row = json.loads(sample["json"])
            assert sample["txt"].decode() == row["prompt"]
            out.append((sample["__key__"], sample["png"], row))
    elif fmt == "parquet":
        for path in sorted((to / "data").glob("*.parquet")):
            for row in pq.read_table(path).to_pylist():
                image = row.pop("image")
                assert image["path"] == f"{row['key']}.png"
                out.append((row["key"], image["bytes"], row))
    else:
        from datasets import load_dataset  # seconds to import: only where used (the module is slow-marked)

        ds = load_dataset("imagefolder", data_dir=str(to / "data"), split="train")
        for row in ds.cast_column("image", ds.features["image"].__class__(decode=False)):
            image = row.pop("image")
            out.append((row["key"], Path(image["path"]).read_bytes(), row))
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_loads_with_its_reader_and_repeats_byte_for_byte(
    folder: Folder, tmp_path: Path, fmt: str
) -> None:
    first = export(folder.out, tmp_path / "a", ExportOptions(fmt, shard_images=20))
    assert (first.samples, first.shards) == (len(folder.good), 3)
    samples = loaded(fmt, tmp_path / "a")
    keys = [k for k, _, _ in samples]
    assert (
        keys == folder.good if fmt != "imagefolder" else sorted(keys) == sorted(folder.good)
    )  # bad ones out
    for key, data, row in samples:
        assert hashlib.sha256(data).hexdigest() == folder.sha256[key] == row["sha256"]
        assert row["job_id"] == key and row["stage"] == "gen" and row["prompt"].startswith("cat ")
        assert isinstance(row["seed"], int) and row["source_path"].endswith(f"/{key}.png")
        assert row["flags"] == "" and len(row["phash"]) == 16
    assert first.excluded == {"blank": 3, "wrong_size": 2}
    export(folder.out, tmp_path / "b", ExportOptions(fmt, shard_images=20))
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    card = (tmp_path / "a" / "README.md").read_text()
    assert f"{len(folder.good):,} synthetic images" in card and "- blank: 3" in card


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_dataset_reads_the_export_folder_through_its_card(
    folder: Folder, tmp_path: Path, fmt: str
) -> None:
    from datasets import load_dataset

    export(folder.out, tmp_path, ExportOptions(fmt, shard_images=25))
    ds = load_dataset(str(tmp_path), split="train")
    assert ds.num_rows == len(folder.good)


def test_dedupe_and_keep_flagged(folder: Folder, tmp_path: Path) -> None:
    summary = export(folder.out, tmp_path / "d", ExportOptions("parquet", dedupe=True))
    assert summary.excluded == {"blank": 3, "wrong_size": 2, "near_duplicate": 4}
    keys = [k for k, _, _ in loaded("parquet", tmp_path / "d")]
    assert keys == [k for k in folder.good if k not in folder.duplicates]
    kept = export(folder.out, tmp_path / "k", ExportOptions("parquet", keep_flagged=True))
    assert kept.samples == 60 and kept.excluded == {}
    flags = {row["key"]: row["flags"] for _, _, row in loaded("parquet", tmp_path / "k")}
    assert {k for k, f in flags.items() if f} == set(folder.blank) | set(folder.wrong_size)
    assert {flags[k] for k in folder.blank} == {"blank"}


def test_stage_filter_and_a_foreign_folder(folder: Folder, tmp_path: Path) -> None:
    assert export(folder.out, tmp_path / "s", ExportOptions("webdataset", stages=("other",))).samples == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty and holds no flux-batch export"):
        export(folder.out, tmp_path / "mine", ExportOptions("parquet"))
    with pytest.raises(UsageError, match="not a flux-batch output folder"):
        export(tmp_path / "mine", tmp_path / "x", ExportOptions("parquet"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_incremental_export_adds_only_new_shards(tmp_path: Path, fmt: str) -> None:
    run = build_folder(tmp_path / "run", 30)
    to = tmp_path / "ds"
    db = sqlite3.connect(run.out / "state.db")  # the run goes on: only the first 18 jobs are done
    db.execute("UPDATE jobs SET status = 'running' WHERE seq > 18")
    db.commit()
    assert export(run.out, to, ExportOptions(fmt, shard_images=10)).samples == 18
    before = tree(to)
    db.execute("UPDATE jobs SET status = 'succeeded'")
    db.commit()
    db.close()
    again = export(run.out, to, ExportOptions(fmt, shard_images=10))
    assert (again.new_samples, again.new_shards, again.samples, again.shards) == (12, 2, 30, 4)
    after = tree(to)
    kept = {k: v for k, v in before.items() if k not in ("README.md", RECORD)}
    assert {k: after[k] for k in kept} == kept  # shards already written are untouched
    assert sorted(k for k, _, _ in loaded(fmt, to)) == sorted(run.good)
    assert export(run.out, to, ExportOptions(fmt, shard_images=10)).new_samples == 0
    with pytest.raises(UsageError, match="other settings"):
        export(run.out, to, ExportOptions(fmt, shard_images=5))
    assert export(run.out, to, ExportOptions(fmt, shard_images=5, overwrite=True)).shards == 6


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_interrupted_export_leaves_no_shard_looking_complete(
    folder: Folder, tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = formats_module.Sample.read

    def failing(self: formats_module.Sample) -> bytes:
        calls.append(self.key)
        if len(calls) == 30:  # in the second shard
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(formats_module.Sample, "read", failing)
    to = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        export(folder.out, to, ExportOptions(fmt, shard_images=20))
    monkeypatch.undo()
    names = [p.name for p in (to / "data").iterdir()]
    assert not [n for n in names if n.startswith(".")], names  # no partial file left behind
    assert len(loaded(fmt, to)) == 20  # the first shard, whole
    resumed = export(folder.out, to, ExportOptions(fmt, shard_images=20))
    assert resumed.samples == len(folder.good)
    export(folder.out, tmp_path / "fresh", ExportOptions(fmt, shard_images=20))
    assert tree(tmp_path / "fresh") == tree(to)


def test_a_tar_member_of_each_sample(folder: Folder, tmp_path: Path) -> None:
    export(folder.out, tmp_path, ExportOptions("webdataset"))
    with tarfile.open(tmp_path / "data" / "000000.tar") as tar:
        names = tar.getnames()
    assert names[:3] == [f"{folder.good[0]}.{ext}" for ext in ("png", "json", "txt")]
    index = pq.read_table(tmp_path / "data" / "000000.parquet")
    assert index.column("key").to_pylist() == folder.good
    assert "image" not in index.schema.names


def test_the_command(folder: Folder, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", str(folder.out), "--format", "parquet", "--to", str(tmp_path), "--dedupe"])
    assert code == 0
    out = capsys.readouterr().out
    assert "exported 51 images in 1 new shard" in out and "4 near duplicate" in out
    assert main(["export", str(folder.out), "--format", "tar", "--to", str(tmp_path)]) == 2
    assert main(["export", str(folder.out), "--format", "imagefolder", "--to", str(tmp_path / "i"),
                 "--shard-size", "10000"]) == 2  # fmt: skip
    assert "between 1 and 9,999" in capsys.readouterr().err
