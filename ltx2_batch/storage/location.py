"""Where a run's files live: a local folder, or an object-storage URL read and written through fsspec.

`output.root` and `export.dir` may be a local path (relative ones are taken from the launch directory, as
always) or a URL such as `s3://bucket/runs`, `gs://bucket/runs` or `az://container/runs`. This module says
which is which (`Location`), which fsspec package a scheme needs (`STORES`) and why a value cannot be
used (`location_problem`): an unknown scheme, a store a cluster cannot share (http, memory, zip...), a
missing package (named, with the extra that installs it) or credentials written into the URL itself, which
would end up in the ledger, the sidecars and config.yaml. A URL is never turned into a local path, so no
folder named `s3:` is ever made. It also settles each node's local scratch folder (`scratch_root`), where
jobs render before they are uploaded, and names a run's private folder inside it (`scratch_key`).
Must not: import fsspec or a store's package at module level (checks only look for them), or touch the
network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SCRATCH_ENV = "LTX2_BATCH_SCRATCH"
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")


@dataclass(frozen=True)
class StoreKind:
    """An object store a run can write to: its fsspec protocol and the package (and extra) providing it."""

    protocol: str
    package: str  # the importable module, which is also the pip name of every package listed here
    extra: str  # `pip install 'ltx2-batch[<extra>]'`


# Shared, writable object stores. Other fsspec schemes (http, memory, zip, ftp...) are refused: a render
# cluster's nodes could not all write them, or they are not object stores at all.
STORES: dict[str, StoreKind] = {
    "s3": StoreKind("s3", "s3fs", "s3"),
    "s3a": StoreKind("s3", "s3fs", "s3"),
    "gs": StoreKind("gcs", "gcsfs", "gcs"),
    "gcs": StoreKind("gcs", "gcsfs", "gcs"),
    "az": StoreKind("abfs", "adlfs", "azure"),
    "abfs": StoreKind("abfs", "adlfs", "azure"),
    "abfss": StoreKind("abfs", "adlfs", "azure"),
}


def is_url(text: str | None) -> bool:
    """`scheme://...` (a `file://` URL included)."""
    return bool(text) and _URL.match(str(text)) is not None


@dataclass(frozen=True)
class Location:
    """A folder: a local one (`text` is its absolute path) or one on object storage (`text` is its URL,
    without a trailing slash)."""

    text: str
    remote: bool = False

    @property
    def path(self) -> Path:
        """The local folder (asking a remote location for one is a programming error)."""
        if self.remote:
            raise ValueError(f"{self.text} is on object storage: it has no local path")
        return Path(self.text)

    def child(self, name: str) -> Location:
        """The folder `name` inside this one, remote or local like it."""
        if self.remote:
            return Location(f"{self.text}/{name}", remote=True)
        return Location(str(Path(self.text) / name))


def parse_location(value: str, base: Path) -> Location:
    """`value` as a Location: a URL stays a URL (`file://` becomes its path), a relative path is taken
    from `base` (the launch directory). Call `location_problem` first: this does not check the scheme."""
    found = _URL.match(value)
    if found is None:
        path = Path(value).expanduser()
        return Location(str(path if path.is_absolute() else base / path))
    scheme = found.group(1).lower()
    if scheme == "file":
        return Location(urlsplit(value).path or "/")
    return Location(f"{scheme}://{found.group(2).rstrip('/')}", remote=True)


def location_problem(setting: str, value: str | None) -> str | None:  # noqa: PLR0911 - one reason per return
    """Why `value` (of `setting`) cannot name a folder a run writes, or None. Local paths are the caller's
    business (run/checks.py tries to write them); this checks URLs only, without the network."""
    if not value:
        return None
    found = _URL.match(value)
    if found is None:
        return None
    scheme = found.group(1).lower()
    if scheme == "file":
        return None
    parts = urlsplit(value)
    if "@" in parts.netloc:
        return (
            f"{setting}={scheme}://...@...: credentials in the URL would be written to the ledger, the "
            "sidecars and config.yaml; give them the way the store's tools expect (environment variables, "
            "a profile, an instance role) and drop them from the URL"
        )
    kind = STORES.get(scheme)
    if kind is None:
        known = ", ".join(f"{s}://" for s in ("s3", "gs", "az"))
        if _fsspec_knows(scheme):
            return (
                f"{setting}={value}: {scheme}:// is not an object store every node of a cluster can write; "
                f"use a local folder or one of {known}"
            )
        return f"{setting}={value}: unknown storage scheme {scheme!r}; use a local folder or one of {known}"
    if not parts.netloc:
        return f"{setting}={value} names no bucket: e.g. {scheme}://my-bucket/runs"
    for package in ("fsspec", kind.package):
        if importlib.util.find_spec(package) is None:
            return (
                f"{setting}={value} needs the {package} package, which is not installed: "
                f"pip install 'ltx2-batch[{kind.extra}]' (or pip install {kind.package})"
            )
    return None


def _fsspec_knows(scheme: str) -> bool:
    if importlib.util.find_spec("fsspec") is None:
        return False
    from fsspec.registry import known_implementations, registry

    return scheme in known_implementations or scheme in registry


def scratch_root(setting: str | None, environ: dict[str, str] | None = None) -> Path:
    """This node's scratch folder: `output.scratch`, else `$LTX2_BATCH_SCRATCH` (set per node, e.g. on
    each `ray start`), else `<system temp>/ltx2-batch-scratch-<uid>`. Settled where it is used (a worker
    on its node, the driver on its own), never on the driver for a worker."""
    env = os.environ if environ is None else environ
    chosen = setting or env.get(SCRATCH_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    return Path(tempfile.gettempdir()) / f"ltx2-batch-scratch-{os.getuid()}"


def scratch_key(url: str) -> str:
    """A run dir's folder name inside a scratch root: readable, and unique per URL."""
    tail = re.sub(r"[^A-Za-z0-9._-]+", "_", url.rstrip("/").rsplit("/", 1)[-1])[:60] or "run"
    return f"{tail}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"
