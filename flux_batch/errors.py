"""Every error flux-batch raises on purpose, and the exit codes the CLI maps them to.

    FluxBatchError                 base; ``str(err)`` is one actionable line, ``exit_code`` the CLI's code
    ├── InputError          (2)    bad input; nothing was submitted and nothing written
    │   ├── ManifestError          one or more located Issues in a manifest (all reported at once)
    │   ├── UsageError             a bad command line, a missing file or folder
    │   └── MissingTokenError      the API token's environment variable is not set
    ├── StateError          (2)    the output folder's state cannot be used (newer schema, damaged)
    │   └── LockedError     (4)    another live run holds the output folder
    ├── StorageError        (5)    the output folder cannot be written now (read-only, I/O error); the run
    │   │                          stops at once, everything recorded is kept and resumes once it is fixed
    │   └── DiskFullError          no space left (ENOSPC, a quota, SQLite's "database or disk is full")
    ├── ApiError                   an API answer we cannot simply retry; carries ``status`` and ``detail``
    │   ├── AuthError       (3)    401/403: the token is wrong or lacks permission; stop submitting
    │   ├── BillingError    (3)    402: the account needs credit; stop submitting
    │   ├── InvalidInputError      422: the API rejected one job's input; that job fails, others go on
    │   ├── NotFoundError          404: unknown model, version or prediction
    │   ├── EndpointError   (2)    creates keep getting the same 404: the base URL is wrong (no /v1?)
    │   ├── RateLimitedError       429: nothing was created; carries ``retry_after`` seconds if known
    │   ├── ServerError            5xx: may be retried (an ambiguous create must be reconciled first)
    │   └── ProtocolError          a response we do not understand (unknown status, malformed JSON);
    │       │                      ``status`` is the HTTP status of the answer (0: not from one answer)
    │       ├── UnknownStatusError a prediction status flux-batch does not know: an error, not a hang
    │       └── ListingError       a list of predictions that does not end: the search is not repeated
    ├── TransportError             the request may not have reached the API (timeout, reset, DNS)
    ├── DownloadError              an output file could not be fetched or failed its checks
    │   ├── OutputGoneError        the API says the output no longer exists (data removed, past retention)
    │   └── BadOutputError         the file is no acceptable image, and fetching it again cannot help
    └── Interrupted        (130)   the user pressed Ctrl-C; the state is resumable

Lower libraries' exceptions (httpx, yaml, sqlite3, jsonschema) are translated at the boundary with
``raise ... from exc`` so that callers handle only these.

Exit codes: 0 all done, 1 some jobs failed or are left, 2 invalid input, 3 auth or billing, 4 folder in
use, 5 folder cannot be written, 70 a bug in flux-batch (an exception it did not mean to raise: EX_SOFTWARE
of sysexits.h), 130 interrupted, 141 output cut short by its reader (``| head``: as if killed by SIGPIPE,
as other Unix tools end).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_JOBS_FAILED = 1
EXIT_INVALID = 2
EXIT_AUTH = 3
EXIT_LOCKED = 4
EXIT_STORAGE = 5
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + 13


@dataclass(frozen=True)
class Issue:
    """One problem in an input file, located for a human and for an editor.

    Rendered as ``file:line:column: json.path: message (hint: ...)``. ``line`` and ``column`` are
    1-based; 0 means unknown. ``severity`` is ``"error"`` or ``"warning"``.
    """

    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str = ""
    severity: str = "error"

    def render(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column or 1}"
        text = f"{where}: {self.path or '$'}: {self.message}"
        if self.severity == "warning":
            text = f"{where}: warning: {self.path or '$'}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class FluxBatchError(Exception):
    """Base of every deliberate flux-batch error."""

    exit_code: int = EXIT_INVALID


class InputError(FluxBatchError):
    """The user's input is wrong; nothing was submitted and nothing written."""

    exit_code = EXIT_INVALID


class ManifestError(InputError):
    """A manifest has one or more errors; ``issues`` holds every one, in file order."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        errors = [i for i in self.issues if i.severity == "error"]
        head = errors[0].render() if errors else "invalid manifest"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(head + more)

    def render_all(self) -> str:
        return "\n".join(i.render() for i in self.issues)


class UsageError(InputError):
    """A bad command line, or a file or folder that does not exist."""


class MissingTokenError(InputError):
    """The environment variable holding the API token is empty or unset."""

    def __init__(self, env_var: str) -> None:
        super().__init__(
            f"no API token: set {env_var} (export {env_var}=r8_...), name another variable with "
            f"api.token_env in the manifest, or try the pipeline for free with --simulator"
        )
        self.env_var = env_var


class StateError(FluxBatchError):
    """The output folder's state cannot be used as it is."""

    exit_code = EXIT_INVALID


class LockedError(StateError):
    """Another live run holds the output folder's lock."""

    exit_code = EXIT_LOCKED


class StorageError(FluxBatchError):
    """The output folder cannot be written now: read-only, an I/O error, the state store failing. The run
    stops at once; everything recorded so far is intact and resumes once the cause is fixed."""

    exit_code = EXIT_STORAGE


class DiskFullError(StorageError):
    """No space left on the output folder's device (or its quota, or a file size limit)."""


#: errno values that mean "no room to write".
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def storage_error(exc: OSError, what: str) -> StorageError:
    """The flux-batch error for an ``OSError`` met while writing ``what`` (a file or folder)."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in _FULL:
        return DiskFullError(
            f"{what}: no space left on the device ({reason}); free some space and run again: everything "
            "finished so far is kept"
        )
    return StorageError(f"{what}: cannot write ({reason}); fix that and run again to resume")


class ApiError(FluxBatchError):
    """An API response that the caller must act on. ``status`` is the HTTP status (0 if none)."""

    def __init__(self, message: str, *, status: int = 0, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or message


class AuthError(ApiError):
    """401 or 403: the token is missing, wrong, or not allowed to do this."""

    exit_code = EXIT_AUTH


class BillingError(ApiError):
    """402: the account needs a payment method or credit."""

    exit_code = EXIT_AUTH


class InvalidInputError(ApiError):
    """422: the API rejected the request's input; retrying the same input cannot help."""


class NotFoundError(ApiError):
    """404: the model, version or prediction does not exist (or is not visible to this token)."""


class EndpointError(NotFoundError):
    """Creates keep getting the same 404 and none has ever succeeded: the base URL is not the API's."""

    exit_code = EXIT_INVALID


class RateLimitedError(ApiError):
    """429: throttled; nothing was created. ``retry_after`` is the server's hint in seconds, if any;
    ``limit_rpm`` the lower limit the server says applies now (a low-credit account), if it says one."""

    def __init__(
        self, message: str, *, retry_after: float | None, detail: str = "", limit_rpm: float | None = None
    ) -> None:
        super().__init__(message, status=429, detail=detail)
        self.retry_after = retry_after
        self.limit_rpm = limit_rpm


class ServerError(ApiError):
    """5xx from the API or a proxy in front of it."""


class ProtocolError(ApiError):
    """A response flux-batch does not understand: unknown status, malformed or unexpected body."""


class UnknownStatusError(ProtocolError):
    """A prediction reported a status that is not one of the documented ones; the job fails with it."""


class ListingError(ProtocolError):
    """Listing predictions did not end within its bounds (an endless or looping ``next`` chain)."""


class TransportError(FluxBatchError):
    """The request failed below HTTP: timeout, connection refused or reset, DNS.

    ``sent`` is True when the request may have reached the server (a create is then ambiguous).
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class DownloadError(FluxBatchError):
    """An output file could not be downloaded, or failed its size or format checks."""


class OutputGoneError(DownloadError):
    """The API says the output is gone for good (``data_removed``, or past its retention): only a new
    prediction can give it. A file host's 404 alone is not that: it is retried like any download error."""


class BadOutputError(DownloadError):
    """The downloaded file is not an acceptable image (a decompression bomb, absurdly many pixels): fetching
    the same file again cannot help."""


class Interrupted(FluxBatchError):
    """The user interrupted the run; everything finished so far is recorded and resumable."""

    exit_code = EXIT_INTERRUPTED


def format_issues(issues: Sequence[Issue]) -> str:
    """All issues, one a line, errors and warnings in the order given."""
    return "\n".join(i.render() for i in issues)
