"""What a dataset sample row holds: the top-level metadata's schema, which of its columns are the export's
own bookkeeping, a shard Parquet's schema, and the ledger columns a sample is made from. Data only: no I/O.
"""

from __future__ import annotations

import pyarrow as pa

_S, _I, _F, _T = pa.string(), pa.int64(), pa.float64(), pa.timestamp("us", "UTC")
DATASET_SCHEMA = pa.schema(
    [
        ("sample_index", _I),
        ("file_name", _S),  # relative to the dataset folder: video/<job_id>.mp4 or image/<job_id>.png
        ("kind", _S),  # video | image
        ("job_id", _S),
        ("job_name", _S),
        ("caption", _S),
        ("negative_prompt", _S),
        ("seed", _I),
        ("width", _I),
        ("height", _I),
        ("resolution", _S),
        ("fps", _F),
        ("num_frames", _I),
        ("frames", _I),
        ("duration_s", _F),
        ("pipeline", _S),
        ("mode", _S),
        ("num_inference_steps", _I),
        ("audio", pa.bool_()),
        ("params_json", _S),
        ("tags_json", _S),
        ("clip_sha256", _S),
        ("clip_bytes", _I),
        ("thumbnail", _S),  # relative, when thumbnails are exported
        ("source_path", _S),  # the rendered file (what re-export checks): see the module doc
        ("source_mtime_ns", _I),
        ("model_name", _S),
        ("model_fingerprint", _S),
        ("run_id", _S),
        ("started_at", _T),  # the render's start (a shard's stats name its first start and last finish)
        ("finished_at", _T),
        ("wds_shard", _S),  # webdataset/<kind>/00000.tar, when shards are exported
        ("wds_key", _S),  # the sample's key in that shard (video2dataset's numbering)
    ]
)
# Bookkeeping of the export itself: in the top-level metadata only, not in a folder's or a sample's.
PRIVATE = ("source_path", "source_mtime_ns", "wds_shard", "wds_key", "params_json", "tags_json")
# A shard's Parquet: video2dataset's `key`/`status`/`error_message`, then the .json's other plain fields
# with JSON's types (times as ISO 8601 text), so each row can be rebuilt from the sample's .json.
SHARD_SCHEMA = pa.schema(
    [("key", _S), ("status", _S), ("error_message", _S)]
    + [(f.name, _S if f.type == _T else f.type) for f in DATASET_SCHEMA if f.name not in PRIVATE]
)
LEDGER_COLUMNS = (
    "job_name",
    "prompt",
    "seed",
    "width",
    "height",
    "frame_rate",
    "num_frames",
    "frames_written",
    "duration_s",
    "pipeline",
    "mode",
    "params_json",
    "tags_json",
    "output_path",
    "thumbnail_path",
    "sidecar_path",
    "files_json",  # a bucket run's uploaded objects (sizes, ETags): checked without a download
    "error",
    "model_name",
    "model_fingerprint",
    "run_id",
    "started_at",
    "finished_at",
)
