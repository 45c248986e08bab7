"""An MP4's own account of what it holds, read from its box structure alone: no decoding, no demuxing.

Owns `top_level_boxes` (the boxes that tile the file, with the first problem found: a cut file leaves its
last box short) and `tracks` (per track in `moov`: its kind from `hdlr`, its sample count from `stsz` and its
duration from `mdhd`). A resumed run checks thousands of done files this way in the time a decode of one
takes: the video track's sample count is the file's frame count (one sample per frame, as every H.264 MP4
stores it), and the audio track's duration is its length as a player presents it.
Must not: decode media or write files.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ltx2_batch.errors import MediaError

_HEADER = 8  # size (u32) and type (4 bytes)
_LARGE_HEADER = 16  # ... plus a u64 size when the u32 size is 1
_MAX_BOXES = 10_000  # boxes walked at one level before giving up (ours have a handful)
_MAX_MOOV = 64 << 20  # a moov this big is not one of ours (ours are kilobytes): refuse, do not read it
_CONTAINERS = (b"trak", b"mdia", b"minf", b"stbl")


@dataclass(frozen=True)
class Box:
    """One MP4 box: its four-letter kind and where it lies in the file."""

    kind: bytes
    offset: int  # of its header
    size: int  # header included
    header: int  # header bytes (8 or 16)

    @property
    def body(self) -> tuple[int, int]:
        """(start, end) of its payload, end exclusive."""
        return self.offset + self.header, self.offset + self.size


@dataclass(frozen=True)
class Track:
    """What one track's boxes say, read without decoding anything."""

    kind: str  # "vide", "soun", ...
    samples: int  # entries of its sample size table: frames of a video track, AAC packets of an audio one
    duration_s: float  # from its media header (an AAC track's includes the encoder's priming and padding)
    timescale: int  # units per second of its media header: the sample rate of an audio track


def _boxes(handle: BinaryIO, start: int, end: int) -> Iterator[Box]:
    """The boxes tiling [start, end); MediaError at the first that does not fit."""
    offset, seen = start, 0
    while offset < end:
        seen += 1
        if seen > _MAX_BOXES:
            raise MediaError(f"more than {_MAX_BOXES} MP4 boxes at one level")
        handle.seek(offset)
        head = handle.read(_LARGE_HEADER)
        if len(head) < _HEADER:
            raise MediaError(f"is cut inside an MP4 box header at byte {offset:,} of {end:,}")
        size, kind = struct.unpack(">I4s", head[:_HEADER])
        header = _HEADER
        if size == 1:
            if len(head) < _LARGE_HEADER:
                raise MediaError(f"is cut inside an MP4 box header at byte {offset:,} of {end:,}")
            size, header = struct.unpack(">Q", head[_HEADER:_LARGE_HEADER])[0], _LARGE_HEADER
        elif size == 0:
            size = end - offset  # "to the end of the file"
        if size < header:
            raise MediaError(f"has a broken MP4 box at byte {offset:,} (size {size})")
        if offset + size > end:
            raise MediaError(f"is truncated: its MP4 boxes need {offset + size:,} bytes, it has {end:,}")
        yield Box(kind, offset, size, header)
        offset += size


def top_level_boxes(path: Path) -> list[Box]:
    """The boxes that tile the whole file (MediaError naming the first problem)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        return list(_boxes(handle, 0, size))


def tracks(path: Path) -> list[Track]:
    """Every track in the file's `moov`, read from its headers and sample tables (MediaError if none)."""
    boxes = top_level_boxes(path)
    moov = next((box for box in boxes if box.kind == b"moov"), None)
    if moov is None:
        raise MediaError("has no MP4 `moov` box (the encoder never finished it)")
    if moov.size > _MAX_MOOV:
        raise MediaError(f"has a {moov.size:,}-byte `moov` box, larger than any this tool writes")
    with path.open("rb") as handle:
        handle.seek(moov.offset)
        data = handle.read(moov.size)
    found = []
    for trak in _children(data, moov.header, moov.size, b"trak"):
        found.append(_track(data, trak))
    return found


def _children(data: bytes, start: int, end: int, kind: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of the bodies of the `kind` boxes directly inside data[start:end]."""
    offset = start
    while offset + _HEADER <= end:
        size, found = struct.unpack(">I4s", data[offset : offset + _HEADER])
        header = _HEADER
        if size == 1:
            size, header = (
                struct.unpack(">Q", data[offset + _HEADER : offset + _LARGE_HEADER])[0],
                _LARGE_HEADER,
            )
        if size < header or offset + size > end:
            raise MediaError(f"has a broken box inside `moov` at byte {offset:,}")
        if found == kind:
            yield offset + header, offset + size
        offset += size


def _child(data: bytes, span: tuple[int, int], *path: bytes) -> tuple[int, int]:
    for kind in path:
        span = next(_children(data, span[0], span[1], kind), (-1, -1))
        if span[0] < 0:
            raise MediaError(f"has a track without its `{kind.decode()}` box")
    return span


def _track(data: bytes, trak: tuple[int, int]) -> Track:
    mdia = _child(data, trak, b"mdia")
    hdlr = _child(data, mdia, b"hdlr")
    kind = data[hdlr[0] + 8 : hdlr[0] + 12].decode("latin-1")  # version/flags, pre_defined, handler_type
    mdhd = _child(data, mdia, b"mdhd")
    version = data[mdhd[0]]
    if version == 1:  # 64-bit times: creation, modification (8 each), timescale (4), duration (8)
        timescale, duration = struct.unpack(">IQ", data[mdhd[0] + 20 : mdhd[0] + 32])
    else:  # creation, modification (4 each), timescale, duration (4 each)
        timescale, duration = struct.unpack(">II", data[mdhd[0] + 12 : mdhd[0] + 20])
    stsz = _child(data, mdia, b"minf", b"stbl", b"stsz")
    samples = struct.unpack(">I", data[stsz[0] + 8 : stsz[0] + 12])[0]  # after version/flags, sample_size
    seconds = duration / timescale if timescale else 0.0
    return Track(kind=kind, samples=int(samples), duration_s=seconds, timescale=int(timescale))
