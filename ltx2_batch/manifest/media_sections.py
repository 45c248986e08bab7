"""The two sections whose input is a media file judged against the clip: a2vid's driving audio and a
retake's source (docs/behaviour.md, "Driving audio (a2vid)" and "Retake sources").

Owns their readers and rules: the driving audio must cover the clip from `start` (its packets, not its
header, say where it ends; `max_duration` may not cut it shorter than the clip); any channel count is
taken and recorded. A retake source is probed whole but never decoded (`inputs.source_facts`: packets
counted): a truncated file is refused, its length must be 8k+1 frames (said once, with the cut to make),
its frame rate is compared as the fraction the container stores (24000/1001 matches `frame_rate: 23.976`;
the job keeps the rate as written, so no job id changes), and a source without sound cannot keep it
(`regenerate_audio: false`). Must not judge a section against the pipeline (`select.py` does) nor decode
more than `inputs.py`'s one-frame probes do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

from ltx2_batch.core.jobs import AudioCondition, RetakeSpec
from ltx2_batch.manifest.inputs import AudioReach, SourceFacts, audio_reach, source_facts
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.reader import FieldReader, report_all
from ltx2_batch.manifest.resolver import InputKind
from ltx2_batch.manifest.select import nearest_frame_counts
from ltx2_batch.manifest.suggest import check_mapping
from ltx2_batch.manifest.values import is_number
from ltx2_batch.manifest.vocabulary import AUDIO, BUILTIN_DEFAULTS, RETAKE

# A stated frame rate matches a source's when within this of the fraction its container stores: `23.976`,
# `23.98` and `23.976023976` all match 24000/1001, and `24` does not (0.024 away).
RATE_TOLERANCE = Fraction(1, 200)
_SLACK_S = 1e-6  # float rounding between seconds computed two ways
# The source's sound may stop this much before its picture (encoder padding) before the kept part counts
# as silent.
_AUDIO_SHORT_S = 0.05


def _up(seconds: float) -> str:
    """Seconds rounded up to the millisecond: a value that, written back, covers `seconds`."""
    return f"{math.ceil(seconds * 1000) / 1000:g}"


def _clip_text(frames: int, rate: float) -> str:
    return f"{frames / rate:.3f} s: {frames} frames at {rate:g} fps"


def audio_input(reader: FieldReader, clip: tuple[int, float] | None) -> AudioCondition | None:
    """`audio_conditioning: {path, start, max_duration}` for a clip of `clip` = (num_frames, frame_rate)
    (None: judged without the clip): the file probed (an audio stream that decodes, and reaches the clip's
    end from `start`), hashed like images, its channel count recorded."""
    value = reader.fields.get("audio_conditioning")
    if value is None:
        return None
    report_all(reader.report, check_mapping(value, AUDIO, "audio_conditioning"))
    if not isinstance(value, dict):
        return None
    if "path" not in value:
        reader.report("audio_conditioning.path", "is required (the audio file that drives the video)")
        return None
    start = reader.item_number("audio_conditioning", value, AUDIO, "start")
    raw_limit = value.get("max_duration")
    limit = float(raw_limit) if is_number(raw_limit) else None
    sound = True
    if raw_limit is not None and limit is None:
        reader.report(
            "audio_conditioning.max_duration", f"must be a number of seconds, got {quote(raw_limit)}"
        )
    if start < 0:
        reader.report("audio_conditioning.start", f"must be >= 0 seconds, got {start:g}")
        sound = False
    if limit is not None and limit <= 0:
        reader.report("audio_conditioning.max_duration", f"must be > 0 seconds, got {limit:g}")
        sound = False
    found = reader.input_file("audio_conditioning.path", value["path"], InputKind.AUDIO)
    channels = 0
    if found.path and not found.error and sound:
        needed = clip[0] / clip[1] if clip is not None else _SLACK_S
        reach = audio_reach(found.path, found.sha256, start, needed)
        channels = reach.channels
        _cover_rules(reader, start, limit, clip, reach)
    return AudioCondition(found.path, found.sha256, start, limit, channels)


def _cover_rules(
    reader: FieldReader, start: float, limit: float | None, clip: tuple[int, float] | None, reach: AudioReach
) -> None:
    """The driving audio must last the whole clip: a2vid encodes exactly the clip's duration of it."""
    if reach.end_s <= start:
        reader.report(
            "audio_conditioning.start",
            f"{start:g} s is past the end of the audio ({reach.end_s:.3f} s); start earlier",
        )
        return
    if clip is None:
        return
    frames, rate = clip
    clip_s = frames / rate
    if limit is not None and limit < clip_s - _SLACK_S:
        reader.report(
            "audio_conditioning.max_duration",
            f"{limit:g} s is shorter than the clip ({_clip_text(frames, rate)}): the driving audio must last "
            f"the whole clip; set it to at least {_up(clip_s)} or leave it out (to the "
            "end of the file)",
        )
    available = reach.end_s - start
    if available < clip_s - _SLACK_S:
        fixes = []
        if reach.end_s >= clip_s:
            fixes.append(f"start at most {math.floor((reach.end_s - clip_s) * 1000) / 1000:g} s")
        fit = int(available * rate - 1) // 8 * 8 + 1 if available * rate >= 1 else 0
        if fit >= 1:
            fixes.append(f"render at most {fit} frames (num_frames: {fit})")
        fixes.append("use a longer file")
        field = "audio_conditioning.start" if start > 0 else "audio_conditioning.path"
        reader.report(
            field,
            f"the audio from {start:g} s lasts {available:.3f} s (its packets end at {reach.end_s:.3f} s), "
            f"shorter than the clip ({_clip_text(frames, rate)}): {', or '.join(fixes)}",
        )
    if limit is None and not reach.header_duration:
        reader.report(
            "audio_conditioning.max_duration",
            "the file's audio stream states no duration in its header, which the a2vid decoder needs when "
            f"max_duration is not set: set max_duration: {_up(clip_s)} (the clip's length)",
        )


def retake(reader: FieldReader, guided: bool) -> RetakeSpec | None:
    """`retake: {path, start, end, regenerate_video, regenerate_audio}`: the source probed (`source_rules`)
    and hashed like images. The job renders at the source's size, length and rate."""
    value = reader.fields.get("retake")
    if value is None:
        return None
    report_all(reader.report, check_mapping(value, RETAKE, "retake"))
    if not isinstance(value, dict):
        return None
    required = [key for key, spec in RETAKE.items() if spec.required]
    for key in required:
        if key not in value:
            reader.report(f"retake.{key}", "is required (the source video and the window to regenerate, s)")
    if not all(key in value for key in required):
        return None
    # a start or end of the wrong kind is reported; the window is then checked as if it were 0
    start, end = (reader.value("retake", value, RETAKE, key) for key in ("start", "end"))
    start_s, end_s = (float(v) if is_number(v) else 0.0 for v in (start, end))
    if not 0 <= start_s < end_s:
        reader.report("retake.end", f"the window must satisfy 0 <= start < end, got [{start_s:g}, {end_s:g}]")
    regenerate_audio = reader.item_flag("retake", value, RETAKE, "regenerate_audio")
    found = reader.input_file("retake.path", value["path"], InputKind.VIDEO)
    if found.path and not found.error:
        facts = source_facts(found.path, found.sha256, reader.ctx.limits.max_num_frames)
        source_rules(reader, facts, (start_s, end_s), regenerate_audio)
    return RetakeSpec(
        found.path,
        found.sha256,
        start_s,
        end_s,
        reader.item_flag("retake", value, RETAKE, "regenerate_video"),
        regenerate_audio,
        guided,
    )


def _setting(fields: Mapping[str, object], key: str) -> object:
    return fields.get(key, BUILTIN_DEFAULTS.get(key))


def source_rules(
    reader: FieldReader, facts: SourceFacts, window: tuple[float, float], regenerate_audio: bool
) -> None:
    """A retake renders at its source's size, length and rate, its window ends inside the source, and the
    sound it keeps must be in the source."""
    limit = reader.ctx.limits.max_num_frames
    if facts.frames > limit:
        reader.report("retake.path", f"has more than {limit:,} frames (limits.max_num_frames); cut it")
        return
    if facts.stated_frames > facts.frames:
        reader.report(
            "retake.path",
            f"is truncated: its header states {facts.stated_frames} frames but the file holds "
            f"{facts.frames}; "
            "re-export the source (a retake re-encodes every frame of it)",
        )
        return
    for key, want in (("width", facts.width), ("height", facts.height)):
        got = _setting(reader.fields, key)
        if got != want:
            reader.report(
                key, f"a retake renders at its source's {key} ({want}), got {quote(got)}: set {key}: {want}"
            )
    _length_rule(reader, facts.frames)
    if not facts.rate:
        reader.report("retake.path", "states no frame rate; re-export the source with one")
        return
    got_rate = _setting(reader.fields, "frame_rate")
    if is_number(got_rate) and abs(Fraction(got_rate) - facts.rate) > RATE_TOLERANCE:
        reader.report(
            "frame_rate",
            f"a retake renders at its source's frame rate ({_rate_text(facts.rate)}), got {quote(got_rate)}: "
            f"set frame_rate: {_decimal(facts.rate)}",
        )
    duration = float(facts.frames / facts.rate)
    if window[1] > duration + _SLACK_S:
        reader.report("retake.end", f"{window[1]:g} s is past the end of the source ({duration:.3f} s)")
    _sound_rule(reader, facts.audio_end_s, duration, window, regenerate_audio)


def _length_rule(reader: FieldReader, frames: int) -> None:
    """The job's length is the source's, and the model renders 8k+1 frames: a source of another length is
    explained once, on its path (asking for num_frames to be both would contradict itself)."""
    if (frames - 1) % 8:
        near = nearest_frame_counts(frames)
        cut = max((n for n in near if n < frames), default=near[0])
        reader.report(
            "retake.path",
            f"has {frames} frames; a retake renders its source's whole length and the model renders 8k+1 "
            f"frames ({' or '.join(map(str, near))} near it): cut the source to {cut} frames (e.g. "
            "`ffmpeg -i "
            f"SOURCE -frames:v {cut} cut.mp4`) and retake that",
        )
        return
    got = _setting(reader.fields, "num_frames")
    if got != frames:
        reader.report(
            "num_frames",
            f"a retake renders at its source's num_frames ({frames}), got {quote(got)}: "
            f"set num_frames: {frames}",
        )


def _sound_rule(
    reader: FieldReader,
    audio_end: float | None,
    duration: float,
    window: tuple[float, float],
    regenerate: bool,
) -> None:
    """Outside the window (and everywhere with `regenerate_audio: false`) the source's sound is kept: it must
    be there. Without an audio stream the whole soundtrack is generated, which `regenerate_audio: true`
    allows and `false` contradicts."""
    if audio_end is None:
        if not regenerate:
            reader.report(
                "retake.regenerate_audio",
                "the source has no audio stream, so there is no sound to keep: set regenerate_audio: true "
                "(the whole soundtrack is then generated, not only the window)",
            )
        return
    start_s, end_s = window
    silent_tail = audio_end < duration - _AUDIO_SHORT_S
    covered = regenerate and start_s <= audio_end and end_s >= duration - _SLACK_S
    if silent_tail and not covered:
        reader.report(
            "retake.path",
            f"its audio stream ends at {audio_end:.3f} s, before its picture ({duration:.3f} s): the sound "
            f"kept from it would be silence after {audio_end:.3f} s; re-export the source with its whole "
            f"sound, or regenerate to the end (start <= {audio_end:.3f}, end: {duration:.3f})",
        )


def _rate_text(rate: Fraction) -> str:
    return (
        f"{rate.numerator} fps"
        if rate.denominator == 1
        else f"{rate.numerator}/{rate.denominator} = {float(rate):.3f} fps"
    )


def _decimal(rate: Fraction) -> str:
    return f"{rate.numerator}" if rate.denominator == 1 else f"{float(rate):.3f}"
