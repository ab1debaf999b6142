"""The output folder's layout: file names and CSV columns.

Written by the runner, read by the report and by people (pandas, Hugging Face ``datasets``); one place
names them so the two sides cannot drift apart. See docs/running.md for what each file holds.
"""

from __future__ import annotations

MANIFEST_CSV = "manifest.csv"
METADATA_CSV = "metadata.csv"
RUN_JSON = "run.json"
IMAGES_DIR = "images"
THUMBS_DIR = ".thumbs"

#: ``manifest.csv`` (and ``metadata.csv``) start with these columns, then one per sweep variable, then one
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
