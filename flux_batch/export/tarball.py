"""WebDataset shards: tar files whose bytes depend on their content only.

Every member gets the same normalised header (regular file, mode 0644, owner 0:0 with no names, a fixed
modification time, ustar format), members are written in the order given, and the archive is padded as
``tarfile`` always pads it. So the same samples give the same bytes on every machine and run.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from typing import BinaryIO

#: The modification time of every member: 2000-01-01T00:00:00Z (0 reads as "no time" in some tools).
MTIME = 946_684_800


def member(name: str, size: int) -> tarfile.TarInfo:
    """The normalised header of a member ``name`` holding ``size`` bytes."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


class ShardTar:
    """A tar archive written to an open binary file: ``add(name, fileobj, size)`` or ``add_bytes``."""

    def __init__(self, fh: BinaryIO) -> None:
        # Closed by close(): a shard is written over many calls.
        self._tar = tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115

    def add(self, name: str, fileobj: BinaryIO, size: int) -> None:
        self._tar.addfile(member(name, size), fileobj)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add(name, io.BytesIO(data), len(data))

    def add_sample(self, key: str, files: Mapping[str, bytes]) -> None:
        """Small members of one sample, ``{key}.{extension}``, in the order given."""
        for ext, data in files.items():
            self.add_bytes(f"{key}.{ext}", data)

    def close(self) -> None:
        self._tar.close()
