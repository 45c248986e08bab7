"""A run's visual summary: an HTML contact sheet of every done job and a PNG grid of the first ones.

    <output_dir>/contact_sheet.html        thumbnails (linked to their clips), prompt, key parameters
    <output_dir>/contact_sheet-<n>.html    further pages when a run has more than `per_page` done jobs
    <output_dir>/contact_sheet.png         a grid of the first `max_tiles` thumbnails with short captions

Built from the ledger (the latest row of each job whose status is `done`) and the thumbnails the
workers wrote, so it can be regenerated at any time and reflects every run in the output dir, not only
the last one. Links are relative: the folder can be moved or served as is. Written to a temporary name
and renamed. Must not render, decode video or change the ledger; imports no torch or Ray.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
from PIL import Image, ImageDraw, ImageFont

from ltx2_batch.ledger.store import LEDGER_DIR, latest_rows, parquet_path

HTML_NAME = "contact_sheet.html"
PNG_NAME = "contact_sheet.png"
_COLUMNS = (
    "job_name",
    "job_index",
    "prompt",
    "seed",
    "width",
    "height",
    "num_frames",
    "frame_rate",
    "pipeline",
    "mode",
    "thumbnail_path",
    "output_path",
    "model_name",
    "run_id",
)
_TILE_W, _TILE_H, _TEXT_H, _PAD = 192, 144, 40, 8


@dataclass(frozen=True)
class SheetEntry:
    """One done job as the sheet shows it (paths relative to the output dir)."""

    job_id: str
    name: str
    prompt: str
    params: str  # "seed 7 · 64x64 · 9f @ 24fps · distilled"
    thumbnail: str | None
    clip: str | None


@dataclass(frozen=True)
class ContactSheet:
    """Where a contact sheet was written (its HTML pages and PNG grid) and how many done jobs it shows."""

    html_pages: tuple[Path | str, ...]  # first page is contact_sheet.html (URLs for a run dir in a bucket)
    png: Path | str | None  # None when no job is done
    entries: int


def sheet_entries(output_dir: Path, links_from: str | None = None) -> list[SheetEntry]:
    """Every job whose latest state is `done`, in manifest order; paths relative to `links_from` (the run
    dir's path or URL, when `output_dir` is a local copy of a bucket's ledger), else to `output_dir`."""
    root = links_from or str(output_dir)
    if not parquet_path(output_dir).exists() and not (Path(output_dir) / LEDGER_DIR).is_dir():
        return []
    table = latest_rows(output_dir, columns=_COLUMNS)
    table = table.filter(pc.equal(table["status"], "done")).sort_by(
        [("job_index", "ascending"), ("job_name", "ascending")]
    )
    out = []
    for row in table.to_pylist():
        params = (
            f"seed {row['seed']} · {row['width']}x{row['height']} · {row['num_frames']}f @ "
            f"{row['frame_rate']:g}fps · {row['pipeline']}"
        )
        out.append(
            SheetEntry(
                row["job_id"],
                row["job_name"] or row["job_id"],
                row["prompt"] or "",
                params,
                _relative(row["thumbnail_path"], root),
                _relative(row["output_path"], root),
            )
        )
    return out


def _relative(path: str | None, root: str) -> str | None:
    """`path` relative to `root` (a folder or a URL: object URLs are relative by their text)."""
    if not path:
        return None
    prefix = root.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, root)


def write_contact_sheet(
    output_dir: Path, per_page: int = 500, max_tiles: int = 64, links_from: str | None = None
) -> ContactSheet:
    """(Re)write the HTML pages and the PNG grid for `output_dir`; returns what was written. `links_from`:
    see `sheet_entries` (the thumbnails shown must then be in `output_dir` under their relative names)."""
    output_dir = Path(output_dir)
    entries = sheet_entries(output_dir, links_from)
    title = (links_from or str(output_dir)).rstrip("/").rsplit("/", 1)[-1]
    pages = [entries[i : i + per_page] for i in range(0, len(entries), per_page)] or [[]]
    names = [HTML_NAME] + [f"contact_sheet-{n}.html" for n in range(2, len(pages) + 1)]
    for number, (name, page) in enumerate(zip(names, pages, strict=True)):
        nav = (
            " ".join(
                f'<a href="{n}">{i + 1}</a>' if i != number else f"<b>{i + 1}</b>"
                for i, n in enumerate(names)
            )
            if len(names) > 1
            else ""
        )
        _atomic_write(output_dir / name, _page(title, page, len(entries), nav).encode())
    for stale in output_dir.glob("contact_sheet-*.html"):  # pages left from a run with more jobs
        if stale.name not in names:
            stale.unlink()
    png = _grid(output_dir, title, entries[:max_tiles], len(entries)) if entries else None
    return ContactSheet(tuple(output_dir / n for n in names), png, len(entries))


def _page(title: str, entries: list[SheetEntry], total: int, nav: str) -> str:
    cards = []
    for e in entries:
        img = (
            f'<img src="{html.escape(e.thumbnail)}" alt="{html.escape(e.name)}" loading="lazy">'
            if e.thumbnail
            else '<div class="missing">no thumbnail</div>'
        )
        if e.clip:
            img = f'<a href="{html.escape(e.clip)}">{img}</a>'
        cards.append(
            f'<figure id="{e.job_id}" data-job-id="{e.job_id}">{img}<figcaption>'
            f"<b>{html.escape(e.name)}</b><br><span class=p>{html.escape(e.prompt)}</span><br>"
            f"<small>{html.escape(e.params)} · <code>{e.job_id}</code></small></figcaption></figure>"
        )
    style = (
        "body{font-family:sans-serif;margin:1em}main{display:flex;flex-wrap:wrap;gap:12px}"
        "figure{width:240px;margin:0}img{width:240px;background:#222}.p{font-size:.85em}"
        ".missing{width:240px;height:135px;background:#ccc}"
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}: {total} done job(s)</h1>"
        f"<nav>{nav}</nav><main>{''.join(cards)}</main></body></html>\n"
    )


def _grid(output_dir: Path, title: str, entries: list[SheetEntry], total: int) -> Path:
    cols = min(8, len(entries))
    rows = -(-len(entries) // cols)
    cell_w, cell_h = _TILE_W + _PAD, _TILE_H + _TEXT_H + _PAD
    sheet = Image.new("RGB", (cols * cell_w + _PAD, rows * cell_h + _PAD + 20), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, entry in enumerate(entries):
        x, y = _PAD + (i % cols) * cell_w, _PAD + (i // cols) * cell_h
        tile = _thumbnail(output_dir, entry)
        sheet.paste(tile, (x + (_TILE_W - tile.width) // 2, y + (_TILE_H - tile.height) // 2))
        draw.text((x, y + _TILE_H + 2), _fit(entry.name, 30), fill="black", font=font)
        draw.text((x, y + _TILE_H + 14), _fit(entry.prompt, 32), fill="dimgray", font=font)
        draw.text((x, y + _TILE_H + 26), _fit(entry.params, 34), fill="dimgray", font=font)
    more = f" (first {len(entries)} shown)" if total > len(entries) else ""
    footer = f"{title}: {total} done job(s){more}"
    draw.text((_PAD, sheet.height - 16), footer, fill="black", font=font)
    target = output_dir / PNG_NAME
    tmp = target.with_name(f".{PNG_NAME}.tmp-{os.getpid()}")
    sheet.save(tmp, format="PNG")
    tmp.replace(target)
    return target


def _thumbnail(output_dir: Path, entry: SheetEntry) -> Image.Image:
    path = output_dir / entry.thumbnail if entry.thumbnail else None
    if path is None or not path.is_file():
        return Image.new("RGB", (_TILE_W, _TILE_H), "lightgray")
    with Image.open(path) as img:
        tile = img.convert("RGB")
    tile.thumbnail((_TILE_W, _TILE_H))
    if tile.width < _TILE_W // 2:  # tiny-model thumbnails are 64 px: scale up so the grid is legible
        scale = min(_TILE_W / tile.width, _TILE_H / tile.height)
        tile = tile.resize((int(tile.width * scale), int(tile.height * scale)), Image.Resampling.NEAREST)
    return tile


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _atomic_write(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(target)
