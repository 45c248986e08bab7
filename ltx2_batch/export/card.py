"""The dataset card: `<dest>/README.md`, whose YAML `configs:` is what HF `datasets` reads to load the folder
by its name (`load_dataset("<folder>")`, or a Hub repo the folder is uploaded to as is).

HF `datasets` (4.x: `load.py`, `infer_module_for_data_files`) picks ONE builder for a whole folder, from
the files of its first config, and every config goes through it: the configs of one card must share a
format. So the card names the WebDataset shards when they were exported (`default`: the video shards;
`images`: the stills' shards), else the `video/` folder through `videofolder` (or `image/` through
`imagefolder` for a run of stills only), else, for an export with no samples, `metadata.parquet`. The
other layouts are described in the text with the call that loads each. Paths in the card are relative to
it. Pure: builds text from counts; the caller writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml


@dataclass(frozen=True)
class CardFacts:
    """What the card says about one export."""

    videos: int
    images: int
    shards: dict[str, int] = field(default_factory=dict)  # kind -> shards written (empty: no WebDataset)
    models: tuple[str, ...] = ()
    seconds: float = 0.0  # of video, summed
    thumbnails: bool = False


def configs(facts: CardFacts) -> tuple[str, list[dict[str, object]]]:
    """(the builder HF will infer, the `configs:` entries); the first entry is the default."""

    def entry(name: str, path: str) -> dict[str, object]:
        """One `configs:` entry: the config's name and its single train split's files."""
        return {"config_name": name, "data_files": [{"split": "train", "path": path}]}

    if facts.shards:
        kinds = [kind for kind in ("video", "image") if facts.shards.get(kind)]
        names = ["default", "images"] if kinds[0] == "video" else ["default"]
        return "webdataset", [entry(n, f"webdataset/{k}/*.tar") for n, k in zip(names, kinds, strict=False)]
    if facts.videos:
        return "videofolder", [entry("default", "video/*")]
    if facts.images:
        return "imagefolder", [entry("default", "image/*")]
    return "parquet", [entry("default", "metadata.parquet")]


_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def _size_category(count: int) -> str:
    return next((name for limit, name in _SIZES if count < limit), "n>1M")


def _layout_rows(facts: CardFacts) -> list[tuple[str, str, str]]:
    """(path, what it holds, how to load it) for each part of this export."""
    rows = [("metadata.parquet", "every sample, one row each", '`load_dataset("parquet", data_files=...)`')]
    if facts.videos:
        rows.append(
            (
                "video/",
                "the clips, and their `metadata.parquet`",
                '`load_dataset("videofolder", data_dir=...)`',
            )
        )
    if facts.images:
        rows.append(
            (
                "image/",
                "the stills, and their `metadata.parquet`",
                '`load_dataset("imagefolder", data_dir=...)`',
            )
        )
    if facts.thumbnails:
        rows.append(("thumbnails/", "one JPEG per sample, named in the `thumbnail` column", ""))
    for kind in ("video", "image"):
        if facts.shards.get(kind):
            rows.append(
                (
                    f"webdataset/{kind}/",
                    f"{facts.shards[kind]} shard(s) in video2dataset's layout: `00000.tar` (`<key>.mp4` or "
                    "`.png`, `.txt`, `.json`), `00000.parquet`, `00000_stats.json`",
                    '`load_dataset("webdataset", data_files=...)`, `webdataset.WebDataset(urls)`',
                )
            )
    return rows


def render_card(facts: CardFacts) -> str:
    """The README.md: YAML front matter (configs, tags) and a short description with loading examples."""
    builder, entries = configs(facts)
    header = {
        "configs": entries,
        "tags": ["synthetic", "ltx-2", "video" if facts.videos else "image"],
        "task_categories": ["text-to-video" if facts.videos else "text-to-image"],
        "size_categories": [_size_category(facts.videos + facts.images)],
    }
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True)
    models = ", ".join(facts.models) or "no model"
    lines = [
        "---",
        front.rstrip("\n"),
        "---",
        "",
        "# Rendered clips",
        "",
        f"{facts.videos} video clip(s) ({facts.seconds:.1f} s in all) and {facts.images} still(s), rendered "
        f"by ltx2_batch with {models}; each with its prompt as the caption and the job's parameters. "
        f'`load_dataset("<this folder or Hub repo>")` reads the `{entries[0]["config_name"]}` config '
        f"({builder}).",
        "",
        "| path | holds | load with |",
        "| --- | --- | --- |",
        *(f"| `{path}` | {what} | {how} |" for path, what, how in _layout_rows(facts)),
        "",
        "Every relative path in a metadata file resolves from the folder of the file that holds it.",
        "Videos decode with torchcodec; to read the bytes without it, cast the column to "
        "`Video(decode=False)`.",
        "",
    ]
    return "\n".join(lines)
