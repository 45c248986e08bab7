"""Collecting a manifest's problems as validation finds them, in bounded memory.

Owns `ProblemLog`: each (job, field, message) kept once, in the order found, with how many expanded jobs
repeat it; the first `errors.MAX_LISTED_PROBLEMS` distinct problems kept whole and the rest only counted,
so a 200,000-value sweep of bad widths costs a counter, not 200,000 messages. Must not judge anything:
the rules report into it, and `error()` turns it into the one `ManifestError` a run stops with.
"""

from __future__ import annotations

import dataclasses

from ltx2_batch.errors import MAX_LISTED_PROBLEMS, FieldProblem, ManifestError
from ltx2_batch.manifest.reader import Report

_Key = tuple[int | None, str, str]


class ProblemLog:
    """The problems of one manifest file (`source`), deduplicated, the first ones kept, the rest counted."""

    def __init__(self, source: str, listed: int = MAX_LISTED_PROBLEMS) -> None:
        self.source = source
        self._listed = listed
        self._first: dict[_Key, FieldProblem] = {}
        self._repeats: dict[_Key, int] = {}
        self.hidden = 0  # problems found after the first `listed` distinct ones

    def add(
        self,
        field: str,
        message: str,
        job_index: int | None = None,
        job_name: str | None = None,
        repeats: int = 0,
    ) -> None:
        """One problem; `repeats`: how many more expanded jobs share it (one template, many jobs)."""
        key = (job_index, field, message)
        if key in self._first:
            self._repeats[key] += 1 + repeats
        elif len(self._first) < self._listed:
            self._first[key] = FieldProblem(self.source, field, message, job_index, job_name)
            self._repeats[key] = repeats
        else:
            self.hidden += 1

    def add_problem(self, problem: FieldProblem) -> None:
        """Log a problem found as a FieldProblem (its job index and name kept)."""
        self.add(problem.field, problem.message, problem.job_index, problem.job_name)

    def reporter(self, job_index: int | None, job_name: str | None, repeats: int = 0) -> Report:
        """A `Report` that files each problem under one job (shared by `repeats` more)."""

        def report(field: str, message: str) -> None:
            """File one problem under the reporter's job."""
            self.add(field, message, job_index, job_name, repeats)

        return report

    def __bool__(self) -> bool:
        return bool(self._first) or bool(self.hidden)

    def error(self) -> ManifestError:
        """The one ManifestError for everything logged; each listed problem says how many jobs repeat it."""
        out = []
        for key, problem in self._first.items():
            more = self._repeats[key]
            suffix = f" (and {more:,} more expanded job(s) of this entry)" if more else ""
            out.append(dataclasses.replace(problem, message=problem.message + suffix))
        return ManifestError(out, self.hidden)

    def raise_if_any(self) -> None:
        """Raise `error()` if anything was logged."""
        if self:
            raise self.error()
