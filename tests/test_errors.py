from __future__ import annotations

from flux_batch import errors
from flux_batch.errors import Issue, ManifestError


def test_issue_renders_file_line_column_path_and_hint() -> None:
    issue = Issue(
        "m.yaml", 4, 7, "stages[0].input.guidanse", "unknown input 'guidanse'", "did you mean 'guidance'?"
    )
    assert issue.render() == (
        "m.yaml:4:7: stages[0].input.guidanse: unknown input 'guidanse' (hint: did you mean 'guidance'?)"
    )


def test_issue_without_position_or_path() -> None:
    assert Issue("m.yaml", 0, 0, "", "empty document").render() == "m.yaml: $: empty document"


def test_warning_is_marked() -> None:
    assert "warning:" in Issue("m.yaml", 1, 1, "x", "ignored", severity="warning").render()


def test_manifest_error_summarises_and_keeps_every_issue() -> None:
    issues = [Issue("m.yaml", i, 1, "p", f"problem {i}") for i in (1, 2, 3)]
    err = ManifestError(issues)
    assert str(err) == "m.yaml:1:1: p: problem 1 (and 2 more)"
    assert err.render_all().count("\n") == 2
    assert err.exit_code == errors.EXIT_INVALID


def test_exit_codes_of_the_families() -> None:
    assert errors.AuthError("x", status=401).exit_code == errors.EXIT_AUTH
    assert errors.BillingError("x", status=402).exit_code == errors.EXIT_AUTH
    assert errors.LockedError("x").exit_code == errors.EXIT_LOCKED
    assert errors.Interrupted("x").exit_code == errors.EXIT_INTERRUPTED
    assert errors.MissingTokenError("MY_TOKEN").exit_code == errors.EXIT_INVALID
    assert "MY_TOKEN" in str(errors.MissingTokenError("MY_TOKEN"))
