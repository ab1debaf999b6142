"""The output folder's layout: file names and CSV columns.

Written by the runner, read by the report and by people (pandas, Hugging Face ``datasets``); one place
names them so the two sides cannot drift apart. See docs/running.md for what each file holds.

Names are chosen so that the folder loads as one Hugging Face ``imagefolder`` dataset whatever the prompts
and stage ids. ``datasets`` takes a file or folder name as a split when a split keyword ("train", "test",
"valid", "dev", "eval", ...) stands in it as a word: at the start of the name or after one of
``-._``, space or a digit, and at the end or before one of those (``datasets.data_files``,
``KEYWORDS_IN_FILENAME_BASE_PATTERNS``). So:

* an image is named by its job id (hex digits: its letters, a to f, spell no keyword), never by its prompt:
  ``images/<stage>/<shard>/<job id>[-<n>].<ext>``;
* a stage id (letters, digits, ``-`` and ``_``) is written with ``=`` before each run of letters
  (:func:`split_safe`), so that no word of it stands between separators: ``test`` gives ``=test``,
  ``edit-v2test`` gives ``=edit-=v2=test``;
* a stage's images are sharded by the job's place in the manifest into numbered folders of at most
  :data:`SHARD_JOBS` jobs (4 images each at most), under the Hub's limit of 10,000 files per folder.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

MANIFEST_CSV = "manifest.csv"
#: The dataset's metadata: Parquet, so every value keeps its type (a prompt "007", "None" or "2024-01-01"
#: stays that text; a CSV or JSON Lines file is re-typed by the loader, chunk by chunk).
METADATA_PARQUET = "metadata.parquet"
#: Metadata files older versions wrote; a dataset folder must hold one metadata file only.
OLD_METADATA = ("metadata.csv",)
RUN_JSON = "run.json"
IMAGES_DIR = "images"
THUMBS_DIR = ".thumbs"
#: Jobs per shard folder: at most 4 images each (num_outputs), so at most 10,000 files per folder.
SHARD_JOBS = 2500
#: The marker written before each run of letters of a stage id in a file or folder name.
MARKER = "="
_LETTERS = re.compile(r"[A-Za-z]+")


def split_safe(text: str) -> str:
    """``text`` with :data:`MARKER` before each run of letters, so that no word of it can be read as a
    split name: every piece between separators then holds a character that is not a letter."""
    return _LETTERS.sub(lambda m: MARKER + m.group(0), text)


def image_dir(stage: str, seq: int) -> str:
    """The folder, relative to the output folder, of the images of the ``seq``-th job (manifest order)."""
    return f"{IMAGES_DIR}/{split_safe(stage)}/{seq // SHARD_JOBS:03d}"


def image_stem(job_id: str, output_index: int = 0) -> str:
    """An output image's file name without extension: the job id, and ``-<n>`` for its n-th image."""
    return f"{job_id}-{output_index}" if output_index else job_id


def in_layout(file_name: str, stage: str, job_id: str, output_index: int) -> bool:
    """Whether ``file_name`` (relative to the output folder) is where this version puts that image
    (in any shard: a shard number follows the manifest's order, which an edit may change)."""
    parts = file_name.split("/")
    if len(parts) != 4 or parts[:2] != [IMAGES_DIR, split_safe(stage)] or not parts[2].isdigit():
        return False
    return PurePosixPath(parts[3]).stem == image_stem(job_id, output_index)


def sheet_name(stage: str, group: int = 0) -> str:
    """The file name of a stage's contact sheet; ``group`` k >= 1: the sheet of the k-th value of its
    grouping axis (``grid_=<stage>.<k>.png``: a stage id has no dot)."""
    return f"grid_{split_safe(stage)}.{group}.png" if group else f"grid_{split_safe(stage)}.png"


#: ``manifest.csv`` (and ``metadata.parquet``) start with these columns, then one per sweep variable, then one
#: per model input other than prompt and seed (``input_<name>``), and end with ``TAIL_COLUMNS``.
HEAD_COLUMNS = ("job_id", "stage", "model", "status", "prompt", "seed")
TAIL_COLUMNS = (
    "prediction_id",
    "upstream_job_id",
    "file_name",
    "sha256",
    "bytes",
    "width",
    "height",
    "phash",
    "flags",
    "predict_time",
    "created_at",
    "completed_at",
    "attempts",
    "cost_usd",
    "error",
)
INPUT_PREFIX = "input_"
#: A sweep variable whose name collides with another column is written as ``var_<name>``.
VAR_PREFIX = "var_"
