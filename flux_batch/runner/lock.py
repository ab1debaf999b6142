"""The output folder's lock: one run per folder, a clear message naming the holder, stale locks recovered.

The lock is ``<out>/.lock``, held with ``flock`` for as long as the run lives: the kernel releases it when
the process dies, however it dies (SIGKILL included), so a stale lock can never block a resume. The file
also records who holds it (pid, host, start time) for the error message; where ``flock`` is unavailable
the pid alone decides: a lock whose pid is dead on this host is stale.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from flux_batch.errors import LockedError, UsageError, storage_error

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started_at: float

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return f"pid {self.pid} on {self.host}, started {when}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), float(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class FolderLock:
    """``with FolderLock(out_dir):`` holds the folder for one run. ``stale`` tells whether a dead run's
    lock was found (and taken over)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / LOCK_FILE
        self._fd: int | None = None
        self.stale: Holder | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            previous = read_holder(self.path)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except (FileNotFoundError, NotADirectoryError, FileExistsError) as exc:
            raise UsageError(
                f"{self.path.parent} is not a folder flux-batch can write in ({exc.strerror}); give --out "
                "another folder"
            ) from exc
        except OSError as exc:
            raise storage_error(exc, f"the output folder {self.path.parent}") from exc
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                holder = read_holder(self.path)
                who = holder.describe() if holder else "another process"
                raise LockedError(
                    f"{self.path.parent} is in use by another flux-batch run ({who}); wait for it to finish, "
                    f"or stop it (Ctrl-C) and run again to resume"
                ) from None
        elif previous is not None and previous.host == socket.gethostname() and pid_alive(previous.pid):
            os.close(fd)  # pragma: no cover - only without flock
            raise LockedError(
                f"{self.path.parent} is in use by another flux-batch run ({previous.describe()})"
            )
        if previous is not None and previous.pid != os.getpid():
            self.stale = previous
        me = Holder(os.getpid(), socket.gethostname(), time.time())
        self._fd = fd
        try:  # who holds it, for another run's message: worth a try, not a run
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(me.__dict__).encode())
            os.fsync(fd)
        except OSError:
            pass

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # a full or read-only disk: the holder's record stays; the lock goes with the fd
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()
