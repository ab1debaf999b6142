"""The dataset card: ``README.md`` at the root of an export, as the Hugging Face Hub reads it.

YAML front matter (licence, task, size category, and a ``configs`` entry naming the data files, so the
Hub and ``load_dataset(PATH)`` read the shards and nothing else beside them), then the counts, the models,
the licence note the user gave and the manifest the images came from. Pure: text in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

#: ``configs`` data files and the builder the Hub uses for each format.
DATA_FILES = {
    "webdataset": "data/*.tar",
    "parquet": "data/*.parquet",
    "imagefolder": "data/**",
}
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


@dataclass(frozen=True)
class CardFacts:
    """What the card says. ``excluded`` counts the samples left out, by reason."""

    name: str
    fmt: str
    images: int
    shards: int
    by_stage: Mapping[str, int]
    by_model: Mapping[str, int]
    excluded: Mapping[str, int] = field(default_factory=dict)
    license: str = "other"
    license_note: str = ""
    manifest_text: str = ""
    options: str = ""


def size_category(n: int) -> str:
    for bound, name in _SIZES:
        if n < bound:
            return name
    return "1M<n<10M" if n < 10_000_000 else "n>10M"


def front_matter(facts: CardFacts) -> dict[str, object]:
    config = {"config_name": "default", "data_files": DATA_FILES[facts.fmt]}
    return {
        "license": facts.license,
        "task_categories": ["text-to-image"],
        "tags": ["synthetic", "flux", "flux-batch"],
        "size_categories": [size_category(facts.images)],
        "configs": [config],
    }


def _table(title: str, counts: Mapping[str, int]) -> list[str]:
    lines = [f"| {title} | images |", "|---|---:|"]
    lines += [f"| `{key}` | {n:,} |" for key, n in sorted(counts.items())]
    return lines


def card_text(facts: CardFacts) -> str:
    """The whole ``README.md``."""
    head = yaml.safe_dump(front_matter(facts), sort_keys=False, allow_unicode=True)
    lines = [
        "---",
        head.rstrip("\n"),
        "---",
        "",
        f"# {facts.name}",
        "",
        f"{facts.images:,} synthetic images generated with FLUX models by flux-batch from the manifest "
        f"below, in {facts.shards:,} {facts.fmt} shard{'s' if facts.shards != 1 else ''}.",
        "",
        *_table("stage", facts.by_stage),
        "",
        *_table("model", facts.by_model),
        "",
    ]
    if facts.excluded:
        lines += ["Left out of this export:", ""]
        lines += [f"- {reason}: {n:,}" for reason, n in sorted(facts.excluded.items())]
        lines.append("")
    lines += ["## Licence", ""]
    lines.append(
        facts.license_note.strip()
        or "No licence note was given (`flux-batch export --license-note`). The terms of each model's "
        "licence apply to its outputs: check them before you publish or train on these images."
    )
    lines += ["", "## How it was made", ""]
    if facts.options:
        lines += [f"Exported with `flux-batch export {facts.options}`.", ""]
    if facts.manifest_text:
        fence = "````" if "```" in facts.manifest_text else "```"
        lines += ["The manifest:", "", f"{fence}yaml", facts.manifest_text.rstrip("\n"), fence, ""]
    return "\n".join(lines)
