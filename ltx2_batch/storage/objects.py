"""One folder on object storage, through fsspec: the few operations a run needs, with their guarantees.

`ObjectStore(url)` is the folder (a run dir, an export dir); every name it takes is relative to it. It
owns:
- uploads that are confirmed (`put_file`): large files go up in parts (`part_bytes`, s3fs's multipart
  upload), and the call returns only once the store reports the object with the file's size and, on S3,
  the ETag computed from the same bytes (checksum.py). Anything else raises StorageError naming the object.
  Objects encrypted with SSE-KMS or SSE-C carry no MD5 ETag: their size alone is compared.
- conditional writes (`create`, `replace`, `delete_if`): S3's If-None-Match / If-Match, which leases need
  (lease.py). Other stores get the same calls done as check-then-write (fine for one writer at a time, not
  a race-free lock: docs/behaviour.md says so).
- listings with sizes and ETags (`listing`), whole-object reads and plain overwrites (parts of the journal,
  the job table, the contact sheet), downloads written atomically (`get_file`).
Credentials are never passed here: s3fs, gcsfs and adlfs find them the way their ecosystems do
(environment, profiles, instance roles). `endpoint_url` (output.endpoint_url) points s3fs at an
S3-compatible store; without it botocore reads `$AWS_ENDPOINT_URL` itself. Listings are never cached, so
every call sees the store as it is. Must not: decide what is written where (callers do) or log secrets.
"""

from __future__ import annotations

import contextlib
import errno
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from ltx2_batch.errors import StorageError
from ltx2_batch.storage.checksum import FileDigest
from ltx2_batch.storage.location import STORES

_ENCRYPTED = ("aws:kms", "aws:kms:dsse")


@dataclass(frozen=True)
class ObjectInfo:
    """An object as the store reports it: size, ETag (unquoted; None when the store gives none), when it
    was last written (the store's clock, UTC) and whether its ETag can be an MD5 of its bytes."""

    size: int
    etag: str | None
    modified: datetime | None
    md5_etag: bool = True
    answered: datetime | None = field(default=None, compare=False)  # the store's clock then (HTTP Date)


class ObjectStore:
    """A folder on object storage (see the module doc). Cheap to build; build one per process."""

    def __init__(self, url: str, endpoint_url: str | None = None) -> None:
        import fsspec

        scheme = url.split("://", 1)[0].lower()
        kind = STORES.get(scheme)
        if kind is None:
            raise StorageError(f"{url}: not an object-storage URL this tool writes to")
        options: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
        if kind.protocol == "s3" and endpoint_url:
            options["endpoint_url"] = endpoint_url
        self.fs = fsspec.filesystem(kind.protocol, **options)
        self.root = url.rstrip("/")
        self.endpoint_url = endpoint_url
        self._s3 = kind.protocol == "s3"
        self._base = str(self.fs._strip_protocol(self.root)).rstrip("/")

    def url(self, rel: str) -> str:
        """The full URL of `rel` (the folder itself for "")."""
        return f"{self.root}/{rel}" if rel else self.root

    def key(self, rel: str) -> str:
        """The fs path of `rel` (no scheme): what fsspec calls take."""
        return f"{self._base}/{rel}" if rel else self._base

    def child(self, rel: str) -> ObjectStore:
        """The folder `rel` below this one, sharing the connection."""
        other = object.__new__(ObjectStore)
        other.__dict__.update(self.__dict__)
        other.root, other._base = self.url(rel), self.key(rel)
        return other

    def rel(self, key: str) -> str:
        """`key` (an fs path under this folder) relative to it."""
        return key[len(self._base) + 1 :] if key.startswith(self._base + "/") else key

    def _s3_call(self, method: str, rel: str, **kwargs: Any) -> Any:
        bucket, key, _ = self.fs.split_path(self.key(rel))
        return self.fs.call_s3(method, Bucket=bucket, Key=key, **kwargs)

    def check_reachable(self) -> None:
        """One request before any work: the bucket exists and the store answers with these credentials.
        Without it a missing bucket or a wrong endpoint surfaces as a library traceback in the middle of a
        launch (or after a run, for an export). On S3 it lists at most one key under this folder: the same
        permission a run needs, not the bucket-wide one HeadBucket asks for."""
        bucket = self._base.split("/", 1)[0]
        at = f" at {self.endpoint_url}" if self.endpoint_url else ""
        try:
            if self._s3:
                prefix = self._base.split("/", 1)[1] + "/" if "/" in self._base else ""
                self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=1)
            elif not self.fs.exists(bucket):
                raise FileNotFoundError(bucket)
        except FileNotFoundError as exc:
            raise StorageError(
                f"{self.root}: the bucket {bucket!r} does not exist{at}: create it, or fix the URL"
            ) from exc
        except PermissionError as exc:
            raise StorageError(
                f"{self.root}: the store{at} refused to list it ({_why(exc)}): check the credentials the "
                "environment gives and their permissions on this bucket"
            ) from exc
        except Exception as exc:  # botocore's connection errors, a wrong endpoint's HTTP answers
            raise StorageError(
                f"{self.root}: the store{at} did not answer ({_why(exc)}): check output.endpoint_url "
                "(or $AWS_ENDPOINT_URL), the network and the credentials"
            ) from exc

    # ------------------------------------------------------------------ reading

    def stat(self, rel: str) -> ObjectInfo | None:
        """The object's size, ETag and time, or None when it does not exist."""
        try:
            if self._s3:
                head = self._s3_call("head_object", rel)
                encrypted = head.get("ServerSideEncryption") in _ENCRYPTED or "SSECustomerAlgorithm" in head
                return ObjectInfo(
                    head["ContentLength"],
                    _etag(head),
                    _utc(head.get("LastModified")),
                    not encrypted,
                    _answered(head),
                )
            info = self.fs.info(self.key(rel))
        except FileNotFoundError:
            return None
        return _info(info)

    def listing(self, folder: str = "", starting_with: str = "") -> dict[str, ObjectInfo]:
        """Every object below `folder` (relative names, this folder's), with sizes and ETags; with
        `starting_with`, only the objects directly in `folder` whose names start with it."""
        try:
            if starting_with and self._s3:  # one ListObjects on the prefix, not the whole folder
                found = self.fs.find(self.key(folder), prefix=starting_with, detail=True)
            else:
                found = self.fs.find(self.key(folder), maxdepth=1 if starting_with else None, detail=True)
        except FileNotFoundError:
            return {}
        base = self.key(folder).rstrip("/") + "/"
        inside = [(name, info) for name, info in found.items() if info.get("type") != "directory"]
        if starting_with:  # directly in the folder (s3fs's prefix search goes deeper)
            inside = [
                (n, i)
                for n, i in inside
                if "/" not in n[len(base) :] and n[len(base) :].startswith(starting_with)
            ]
        return {self.rel(name): _info(info) for name, info in inside}

    def read(self, rel: str) -> bytes | None:
        """The whole object, or None when it does not exist."""
        try:
            return bytes(self.fs.cat_file(self.key(rel)))
        except FileNotFoundError:
            return None

    def read_many(self, rels: list[str]) -> dict[str, bytes]:
        """Several whole objects, fetched concurrently; those that do not exist are left out."""
        if not rels:
            return {}
        found = self.fs.cat([self.key(rel) for rel in rels], on_error="omit")
        return {self.rel(key): bytes(data) for key, data in found.items()}

    def get_file(self, rel: str, local: Path) -> bool:
        """Download to `local` (a temporary name, then renamed); False when the object does not exist."""
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.get-{secrets.token_hex(4)}")
        try:
            self.fs.get_file(self.key(rel), str(tmp))
            tmp.replace(local)
        except FileNotFoundError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    # ------------------------------------------------------------------ writing

    def write(self, rel: str, data: bytes) -> None:
        """Overwrite (or create) the object with `data`: one PUT, atomic for readers."""
        self.fs.pipe_file(self.key(rel), data)

    def put_file(self, local: Path, rel: str, digest: FileDigest) -> ObjectInfo:
        """Upload `local` (in parts of `digest.part_bytes` when large) and confirm it (module doc)."""
        try:
            if self._s3:
                self.fs.put_file(str(local), self.key(rel), chunksize=digest.part_bytes)
            else:
                self.fs.put_file(str(local), self.key(rel))
            found = self.stat(rel)
        except Exception as exc:  # fsspec maps the store's refusals to OSError; botocore's connection errors
            raise StorageError(f"upload of {local.name} to {self.url(rel)} failed: {_why(exc)}") from exc
        if found is None:
            raise StorageError(f"upload of {local.name} to {self.url(rel)}: the store does not list it after")
        if found.size != digest.size:
            raise StorageError(
                f"upload of {local.name} to {self.url(rel)}: the store holds {found.size} bytes, "
                f"the file has {digest.size}"
            )
        if self._s3 and found.md5_etag and found.etag != digest.s3_etag:
            raise StorageError(
                f"upload of {local.name} to {self.url(rel)}: ETag {found.etag} differs from the "
                f"{digest.s3_etag} of the file's bytes"
            )
        return found

    def create(self, rel: str, data: bytes) -> str | None:
        """Write `data` only if no object is there: its ETag, or None when one already was."""
        if self._s3:
            try:
                return _etag(self._s3_call("put_object", rel, Body=data, IfNoneMatch="*"))
            except FileExistsError:
                return None
            except OSError as exc:
                if _precondition(exc):
                    return None
                raise
        if self.fs.exists(self.key(rel)):
            return None
        self.fs.pipe_file(self.key(rel), data)
        found = self.stat(rel)
        return (found.etag or _stamp(found)) if found else None

    def replace(self, rel: str, data: bytes, etag: str) -> str | None:
        """Overwrite the object only while its ETag is still `etag`: the new ETag, or None when it changed
        (or vanished)."""
        if self._s3:
            try:
                return _etag(self._s3_call("put_object", rel, Body=data, IfMatch=_quoted(etag)))
            except FileNotFoundError:
                return None
            except OSError as exc:
                if _precondition(exc):
                    return None
                raise
        found = self.stat(rel)
        if found is None or (found.etag or _stamp(found)) != etag:
            return None
        self.fs.pipe_file(self.key(rel), data)
        after = self.stat(rel)
        return (after.etag or _stamp(after)) if after else None

    def delete_if(self, rel: str, etag: str) -> bool:
        """Delete the object only while its ETag is still `etag`; whether it did."""
        if self._s3:
            try:
                self._s3_call("delete_object", rel, IfMatch=_quoted(etag))
            except (FileNotFoundError, OSError) as exc:
                if isinstance(exc, FileNotFoundError) or _precondition(exc):
                    return False
                raise
            return True
        found = self.stat(rel)
        if found is None or (found.etag or _stamp(found)) != etag:
            return False
        self.fs.rm_file(self.key(rel))
        return True

    def remove(self, rels: Iterable[str]) -> None:
        """Delete these objects (those already gone are fine)."""
        keys = [self.key(rel) for rel in rels]
        if keys:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(keys)

    def remove_prefix(self, prefix: str) -> None:
        """Delete every object below `prefix`."""
        self.remove(self.listing(prefix))


def check_store(url: str, endpoint_url: str | None = None) -> None:
    """Refuse (StorageError) a bucket URL whose bucket is missing or whose store does not answer."""
    ObjectStore(url, endpoint_url).check_reachable()


def _etag(reply: dict[str, Any]) -> str | None:
    value = reply.get("ETag")
    return str(value).strip('"') if value else None


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


def _utc(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, timezone.utc)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return None


def _info(info: dict[str, Any]) -> ObjectInfo:
    """fsspec's `info`/`find` details, whatever the store, as an ObjectInfo."""
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    modified = (
        info.get("LastModified") or info.get("updated") or info.get("last_modified") or info.get("mtime")
    )
    return ObjectInfo(int(info.get("size") or 0), str(etag).strip('"') if etag else None, _utc(modified))


def _answered(reply: dict[str, Any]) -> datetime | None:
    """The store's clock when it sent `reply` (the HTTP Date header), UTC; None without one."""
    date = reply.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not date:
        return None
    with contextlib.suppress(TypeError, ValueError):
        return parsedate_to_datetime(date).astimezone(timezone.utc)
    return None


def _stamp(found: ObjectInfo) -> str:
    """A version token for stores without ETags: size and time."""
    return f"{found.size}@{found.modified.isoformat() if found.modified else ''}"


def _precondition(exc: OSError) -> bool:
    """s3fs turns S3's 412 PreconditionFailed into OSError(EINVAL) (If-Match) or FileExistsError
    (If-None-Match); a conditional PUT or DELETE has no other EINVAL answer."""
    return exc.errno == errno.EINVAL


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
