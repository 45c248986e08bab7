"""Every exception the product raises on purpose, in one place.

Callers branch on these types: validation and config errors stop a run before any model work; fatal
backend errors fail a job (or, raised while workers start, the run) without retrying it. Worker deaths are
Ray's own exceptions, classified by the Ray runner.
"""

from __future__ import annotations

from dataclasses import dataclass


class Ltx2BatchError(Exception):
    """Base class: anything the tool raises deliberately."""


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one field of one job (or of the manifest itself when job_index is None)."""

    source: str
    field: str
    message: str
    job_index: int | None = None
    job_name: str | None = None

    def render(self) -> str:
        """The one-line message: source, job (index and name) when there is one, field, what is wrong."""
        where = self.source
        if self.job_index is not None:
            name = f" ({self.job_name!r})" if self.job_name else ""
            where += f": job {self.job_index}{name}"
        return f"{where}: field '{self.field}': {self.message}"


# A report lists at most this many problems and counts the rest: "every problem at once" stays readable and
# bounded (a 200,000-value sweep of bad widths is one screen, not a 36 MB message).
MAX_LISTED_PROBLEMS = 50


class ManifestError(Ltx2BatchError):
    """A manifest (or its config) is invalid. Carries every problem found, not only the first: the first
    MAX_LISTED_PROBLEMS in `problems`, and how many more were found in `hidden`."""

    def __init__(self, problems: list[FieldProblem], hidden: int = 0) -> None:
        listed = list(problems)
        self.problems = listed[:MAX_LISTED_PROBLEMS]
        self.hidden = hidden + len(listed) - len(self.problems)
        lines = [p.render() for p in self.problems]
        head = f"{len(lines) + self.hidden:,} problem(s) in the render manifest:"
        if self.hidden:
            lines.append(
                f"... and {self.hidden:,} more not listed (the first {len(self.problems)} are): fix these "
                "and validate again (plan=true)"
            )
        super().__init__("\n  ".join([head, *lines]))


class ConfigError(Ltx2BatchError):
    """The Hydra configuration is inconsistent in a way its schema cannot express."""


class MissingWeightsError(Ltx2BatchError):
    """Model files are not where the model config says; the message lists them and how to get them."""


class FatalBackendError(Ltx2BatchError):
    """The backend cannot render this job; retrying the same input will fail the same way."""


class StorageError(Ltx2BatchError):
    """Object storage refused, lost or could not confirm a write (the message names the object)."""


class JobCancelledError(Ltx2BatchError):
    """A job stopped because the run was cancelled (Ctrl-C / SIGTERM)."""


class MediaError(Ltx2BatchError):
    """Writing, muxing or probing a media file failed; ffmpeg's stderr tail is in the message."""


class LedgerError(Ltx2BatchError):
    """The run ledger cannot be written or read (journal in use, unreadable Parquet, an invalid row)."""
