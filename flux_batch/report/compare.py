"""Two runs side by side: for each image of a folder, another folder's image for the same variables.

Rows match on their stage id and the sweep values of the variables both runs' stages have (the k-th row
of a combination in one run with the k-th in the other: ``repeat`` and several outputs line up), so a
prompt edited between the runs, or a model set per run, still pairs them. The other run's images are
referenced by their path relative to this folder (keep the two folders side by side, as they were).
"""

from __future__ import annotations

import os
from pathlib import Path

from flux_batch.report.data import Folder, Row
from flux_batch.report.thumbnails import thumb_path_for

Key = tuple[str, tuple[tuple[str, str], ...], int]


class Comparison:
    """The other folder's image (thumbnail if there is one) for each row of ``folder``, as a callable."""

    def __init__(self, folder: Folder, other: Folder) -> None:
        self.out_dir = folder.out_dir
        self.label = other.name if other.name != folder.name else str(other.out_dir)
        mine = {s.id: s.vars for s in folder.stages}
        self._common = {
            s.id: tuple(v for v in s.vars if v in mine.get(s.id, ())) for s in other.stages if s.id in mine
        }
        self._paths: dict[Key, str] = {}
        seen: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        for row in other.rows():
            base = self._base(row)
            if base is None:
                continue
            k = seen[base] = seen.get(base, -1) + 1
            if row.status == "succeeded" and row.file_name:
                self._paths[(base[0], base[1], k)] = self._relative(other.out_dir, row.file_name)
        self._seen: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}

    def _base(self, row: Row) -> tuple[str, tuple[tuple[str, str], ...]] | None:
        common = self._common.get(row.stage)
        if common is None:
            return None
        return row.stage, tuple((v, row.vars.get(v, "")) for v in common)

    def _relative(self, other_dir: Path, file_name: str) -> str:
        thumb = thumb_path_for(file_name)
        name = thumb if (other_dir / thumb).is_file() else file_name
        return Path(os.path.relpath(other_dir.resolve() / name, self.out_dir.resolve())).as_posix()

    def __call__(self, row: Row) -> str:
        """The other run's image for ``row`` ("" if none); call once per row, in the folder's order."""
        base = self._base(row)
        if base is None:
            return ""
        k = self._seen[base] = self._seen.get(base, -1) + 1
        return self._paths.get((base[0], base[1], k), "")
