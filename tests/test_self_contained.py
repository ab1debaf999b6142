"""The test suite needs nothing outside the repository (#11.1): a user's clone has nothing beside it.

Two checks: no test source names a path outside the checkout (a quick scan), and the quick suite passes
when run from a copy of the repository in an empty folder, with every file it opens watched by an audit
hook: opening anything in the folder that holds the real checkout (where ``../shared`` would be) fails
the run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
#: Names of material kept beside a checkout, or machine paths, that a test must never read.
FORBIDDEN = re.compile(r"shared/reference|\.\./shared|/work/|/home/\w+/")
PARENTS = re.compile(r"\.parents\[(\d+)\]")
SKIP_DIRS = {"node_modules", "__pycache__", ".pytest_cache"}


def _sources() -> list[Path]:
    return [
        path
        for path in sorted(TESTS.rglob("*"))
        if path.is_file()
        and path.suffix in (".py", ".js", ".mjs", ".json", ".yaml", ".yml")
        and not SKIP_DIRS & set(path.relative_to(TESTS).parts)
    ]


def test_no_test_source_names_a_path_outside_the_repository() -> None:
    offences = []
    for path in _sources():
        text = path.read_text(encoding="utf-8", errors="replace")
        scan_names = path != Path(__file__).resolve()  # this file names them to look for them
        depth = len(path.relative_to(TESTS).parts)  # parents[depth] is the repository's root
        for number, line in enumerate(text.splitlines(), 1):
            if scan_names and FORBIDDEN.search(line):
                offences.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
            offences += [
                f"{path.relative_to(ROOT)}:{number}: parents[{m[1]}] leaves the repository"
                for m in PARENTS.finditer(line)
                if int(m[1]) > depth
            ]
    assert not offences, "\n".join(offences)
    assert len(_sources()) > 20  # the scan saw the suite


def repository_files() -> list[str]:
    """The checkout's files as a clone would have them (tracked, plus new files not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


WATCHED_RUN = """
import os.path
import sys
watched, clone, temp = sys.argv[1], sys.argv[2], sys.argv[3]
beside = os.path.join(watched, "shared") + os.sep
allowed = tuple(p + os.sep for p in {clone, temp, sys.prefix, sys.base_prefix, sys.exec_prefix})
seen = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if path.startswith(beside) or (path.startswith(watched + os.sep) and not path.startswith(allowed)):
            seen.append(path)
            raise PermissionError(f"the test suite opened {path}, outside its repository")
sys.addaudithook(hook)
import pytest
code = pytest.main(["-m", "not slow", "-q", "-x", "-p", "no:cacheprovider", "tests"])
if seen:
    print("OPENED OUTSIDE THE REPOSITORY:", *sorted(set(seen)), sep="\\n")
sys.exit(code or (3 if seen else 0))
"""


@pytest.mark.slow
@pytest.mark.timeout(660)  # the quick suite runs here on one core, in-process (the audit hook sees only it)
def test_the_quick_suite_passes_in_a_copy_with_nothing_beside_it(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("this check copies the checkout's files as git lists them; run it in a git checkout")
    clone = tmp_path / "flux-batch"
    for name in repository_files():
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    assert [p.name for p in tmp_path.iterdir()] == ["flux-batch"]  # nothing beside the copy
    env = {**os.environ, "PYTHONPATH": str(clone)}
    result = subprocess.run(
        [sys.executable, "-c", WATCHED_RUN, str(ROOT.parent), str(clone), tempfile.gettempdir()],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
    assert result.returncode == 0, tail
    where = subprocess.run(
        [sys.executable, "-c", "import flux_batch; print(flux_batch.__file__)"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where == str(clone / "flux_batch" / "__init__.py")  # the copy's code ran, not the checkout's
