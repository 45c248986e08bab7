"""Reading one expanded job's fields: typed values out, every problem reported, none raised.

Owns `JobContext` (what a job's rules depend on besides its own fields), the `Report` callback and
`report_all` (the one way a list of (field, message) problems is passed on), and `FieldReader`, which
reads typed values out of a job's field dict, with the kinds and defaults of `vocabulary`'s tables,
reporting each problem and remembering that one was. Must not decide what a value means for the
render (the section readers and the job rules do) nor raise for a user's value: a manifest's every
problem surfaces in one error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ltx2_batch.core.jobs import ChunkingSpec
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.resolver import InputKind, Resolve, ResolvedInput
from ltx2_batch.manifest.select import ANY_WEIGHTS, WeightsOffer
from ltx2_batch.manifest.suggest import unknown_keys
from ltx2_batch.manifest.values import expect, is_int, is_number, type_name
from ltx2_batch.manifest.vocabulary import BUILTIN_DEFAULTS, JOB, Section

Problem = tuple[str, str]  # (field, message), as every manifest rule returns them
Report = Callable[[str, str], None]  # (field, message)


def report_all(report: Report, problems: Iterable[Problem]) -> None:
    """Pass each of a rule's problems on: rules return them, so one rule's findings never stop another."""
    for field, message in problems:
        report(field, message)


@dataclass(frozen=True)
class JobContext:
    """Everything a job's rules depend on besides its own fields."""

    chunking: ChunkingSpec
    resolve: Resolve
    base_seed: int = 0  # the manifest's, or the CLI's `seed=N`, which replaces it (seeds.py)
    limits: Limits = DEFAULT_LIMITS
    weights: WeightsOffer = ANY_WEIGHTS  # what the model's files serve: `auto`'s recipe and its refusals


def _table_error(section: Section, key: str, want: str) -> TypeError:
    """A reader asked for a key as a kind its table does not give it: a bug in this package, not input."""
    return TypeError(
        f"vocabulary: {key!r} is a {section[key].kind} with default {section[key].default!r}, not {want}"
    )


class FieldReader:
    """Reads typed values out of one job's field dict, reporting each problem; `bad` says if any was."""

    def __init__(self, fields: Mapping[str, object], report: Report, ctx: JobContext) -> None:
        self.fields = fields
        self.ctx = ctx
        self._report = report
        self.bad = False

    def report(self, field: str, message: str) -> None:
        """Report a problem with this job and remember that there was one."""
        self.bad = True
        self._report(field, message)

    # Job fields: the kind and default of `vocabulary.JOB`; None when missing and required, or reported.

    def _field(self, key: str, kinds: tuple[str, ...]) -> object:
        if JOB[key].kind not in kinds:
            raise _table_error(JOB, key, " or ".join(kinds))
        if key not in self.fields and key not in BUILTIN_DEFAULTS:
            self.report(key, "is required")
            return None
        value = self.fields.get(key, BUILTIN_DEFAULTS.get(key))
        problem = expect(value, JOB[key].kind)
        if problem:
            self.report(key, problem)
            return None
        return value

    def text(self, key: str) -> str | None:
        """A string field, or None when missing and required, or reported."""
        value = self._field(key, ("str",))
        return value if isinstance(value, str) else None

    def integer(self, key: str) -> int | None:
        """An `int` field, or an `int?` one (None also for null)."""
        value = self._field(key, ("int", "int?"))
        return value if is_int(value) else None

    def number(self, key: str) -> float | None:
        """The value as written: an int stays an int, so messages show `24`, not `24.0`."""
        value = self._field(key, ("number",))
        return value if is_number(value) else None

    def flag(self, key: str) -> bool | None:
        """A boolean field, or None when missing and required, or reported."""
        value = self._field(key, ("bool",))
        return value if isinstance(value, bool) else None

    # Keys of a nested mapping `item` at `where`: the kind and default of its section's table.

    def value(self, where: str, item: Mapping[str, object], section: Section, key: str) -> object:
        """The key's value, or its default when missing or reported."""
        spec = section[key]
        value = item.get(key, spec.default)
        problem = expect(value, spec.kind)
        if problem:
            self.report(f"{where}.{key}", problem)
            return spec.default
        return value

    def item_number(self, where: str, item: Mapping[str, object], section: Section, key: str) -> float:
        """A number key of `item` as a float (its default when missing or reported)."""
        value = self.value(where, item, section, key)
        if not is_number(value):
            raise _table_error(section, key, "a number with a default")
        return float(value)

    def item_int(self, where: str, item: Mapping[str, object], section: Section, key: str) -> int:
        """An integer key of `item` (its default when missing or reported)."""
        value = self.value(where, item, section, key)
        if not is_int(value):
            raise _table_error(section, key, "an integer with a default")
        return value

    def item_flag(self, where: str, item: Mapping[str, object], section: Section, key: str) -> bool:
        """A boolean key of `item` (its default when missing or reported)."""
        value = self.value(where, item, section, key)
        if not isinstance(value, bool):
            raise _table_error(section, key, "a boolean with a default")
        return value

    def item_text(self, where: str, item: Mapping[str, object], section: Section, key: str) -> str:
        """A string key of `item` (its default when missing or reported)."""
        value = self.value(where, item, section, key)
        if not isinstance(value, str):
            raise _table_error(section, key, "a string with a default")
        return value

    def items(self, key: str, section: Section) -> list[Mapping[str, object]]:
        """The job field `key`: a list of mappings with `section`'s keys (none when missing)."""
        return self.item_list(key, self.fields.get(key, []), section)

    def item_list(self, key: str, value: object, section: Section) -> list[Mapping[str, object]]:
        """`value` as a list of mappings with `section`'s keys; each problem reported, bad items left out."""
        if not isinstance(value, list):
            self.report(key, f"must be a list of mappings, got {type_name(value)}")
            return []
        out: list[Mapping[str, object]] = []
        for i, item in enumerate(value):
            where = f"{key}[{i}]"
            if not isinstance(item, dict):
                self.report(where, f"must be a mapping with keys {', '.join(section)}, got {type_name(item)}")
                continue
            report_all(
                self.report, ((f"{where}.{sub}", message) for sub, message in unknown_keys(item, section))
            )
            for sub, spec in section.items():
                if spec.required and sub not in item:
                    self.report(f"{where}.{sub}", "is required")
            out.append(item)
        return out

    def in_range(self, field: str, value: float, low: float, high: float, what: str = "") -> None:
        """Report `value` unless it lies in [low, high]; `what` replaces "must be" in the message."""
        if not low <= value <= high:
            self.report(field, f"{what or 'must be'} in [{low:g}, {high:g}], got {quote(value)}")

    def input_file(self, field: str, raw: object, kind: InputKind) -> ResolvedInput:
        """The file a path string names, resolved, hashed and checked once per distinct path."""
        if not isinstance(raw, str):
            self.report(field, f"must be a path string, got {type_name(raw)}")
            return ResolvedInput()
        found = self.ctx.resolve(raw, kind)
        if found.error:
            self.report(field, found.error)
        return found
