"""What a run tells its caller when it ends: the typed report, its exit code and its printed summary."""

from __future__ import annotations

from dataclasses import dataclass

from ltx2_batch.export.contact_sheet import ContactSheet
from ltx2_batch.run.progress import RunStats, summary_table


@dataclass(frozen=True)
class RunReport:
    """One launch's result: its counts, where its outputs and ledger are, and whether a signal ended it."""

    output_dir: str  # a path, or a bucket URL
    stats: RunStats
    ledger_path: str | None
    interrupted: bool
    contact_sheet: ContactSheet | None = None
    signal_exit_code: int = 130
    fatal: str | None = None  # the run stopped because the model cannot load (exit 2, like a refused setup)

    @property
    def exit_code(self) -> int:
        """2 when the model cannot load, 130/143 after a signal (or cancelled jobs), 1 when a job failed,
        else 0."""
        if self.fatal:
            return 2
        if self.interrupted or self.stats.cancelled:
            return self.signal_exit_code
        return 1 if self.stats.failed else 0


def format_report(report: RunReport) -> str:
    """The end-of-run summary: the table of counts and timings, then where things are."""
    lines = [summary_table(report.stats)]
    if report.ledger_path:
        lines.append(f"ledger: {report.ledger_path}")
    lines.append(f"outputs: {report.output_dir}")
    if report.contact_sheet and report.contact_sheet.entries:
        sheet = report.contact_sheet
        lines.append(f"contact sheet: {sheet.html_pages[0]} ({sheet.entries} clips)")
    if report.interrupted:
        lines.append("run interrupted: rerun the same command to resume")
    if report.fatal:
        lines.append(f"error: the run stopped: {report.fatal}")
    return "\n".join(lines)
