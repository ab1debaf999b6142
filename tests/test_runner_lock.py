"""The folder lock: exclusive between processes, names the holder, recovers from a killed holder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flux_batch.errors import LockedError
from flux_batch.runner.lock import FolderLock, pid_alive, read_holder

HOLD = """
import sys, time
from pathlib import Path
from flux_batch.runner.lock import FolderLock
lock = FolderLock(Path(sys.argv[1])); lock.acquire(); print("held", flush=True); time.sleep(60)
"""


def test_lock_writes_holder_and_releases(tmp_path: Path) -> None:
    with FolderLock(tmp_path) as lock:
        holder = read_holder(lock.path)
        assert holder is not None and holder.pid == os.getpid()
    assert read_holder(tmp_path / ".lock") is None
    with FolderLock(tmp_path) as again:
        assert again.stale is None


def test_second_process_is_refused_then_stale_lock_recovered(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=f"pid {proc.pid}"):
            FolderLock(tmp_path).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not pid_alive(proc.pid)
    lock = FolderLock(tmp_path)
    lock.acquire()
    assert lock.stale is not None and lock.stale.pid == proc.pid
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    lock.release()
