"""Media I/O against the real ffmpeg binary and real PyAV decoding: counts, durations, seams, atomicity.

No torch, no Ray. Every check reads the written file back (frames by decoding, audio by decoding), because
a command line that "should" be exact is not evidence that it is.
"""

from __future__ import annotations

import array
import dataclasses
import enum
import itertools
import json
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ltx2_batch.errors import Ltx2BatchError, MediaError
from ltx2_batch.media import write as media_write
from ltx2_batch.media.ffmpeg import (
    ffmpeg_encode_command,
    ffmpeg_exe,
    ffmpeg_mux_command,
    rate_fraction,
    run_ffmpeg,
)
from ltx2_batch.media.probe import (
    MediaInfo,
    VideoCount,
    decode_frame_index,
    frame_index_pattern,
    probe,
    read_audio,
    read_frames,
)
from ltx2_batch.media.sidecar import read_sidecar, sidecar_text, write_sidecar
from ltx2_batch.media.write import (
    AAC_FRAME_SAMPLES,
    Mp4Writer,
    expected_audio_samples,
    fit_audio,
    partial_path,
    partials_of,
    write_mp4,
    write_png,
    write_thumbnail,
)

FPS = 24
SR = 48000


def index_frames(count: int, height: int = 64, width: int = 64, first: int = 0) -> np.ndarray:
    return np.stack([frame_index_pattern(first + i, height, width) for i in range(count)])


def gradient_frames(count: int, height: int = 64, width: int = 96) -> np.ndarray:
    """Smooth colour ramps that move a little per frame: what a lossy codec handles well."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for i in range(count):
        r = 40 + 170 * xx / width + 2 * i
        g = 30 + 180 * yy / height
        b = 120 + 80 * np.sin((xx + yy + 3 * i) / 20)
        out.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def tone(samples: int, channels: int = 2, hz: float = 440.0) -> np.ndarray:
    t = np.arange(samples, dtype=np.float32) / SR
    mono = 0.3 * np.sin(2 * np.pi * hz * t).astype(np.float32)
    return np.stack([mono * (1 if c == 0 else -1) for c in range(channels)])


def leftovers(folder: Path) -> list[str]:
    """Temporaries a writer failed to clean up (they are hidden and end in .partial)."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


# ---------------------------------------------------------------- pure command builders and arithmetic


def test_encode_command_pipes_raw_rgb_into_one_x264_encoder() -> None:
    cmd = ffmpeg_encode_command("out.mp4", 768, 512, 24, crf=0, preset="veryfast", exe="/bin/ff")
    assert cmd[0] == "/bin/ff"
    assert cmd[-1] == "out.mp4"
    split = cmd.index("-i")
    given = dict(itertools.pairwise(cmd[:split]))  # options that describe the piped input
    made = dict(itertools.pairwise(cmd[split:]))  # options that describe the encoded output
    assert (given["-f"], given["-pix_fmt"], given["-s"], given["-framerate"]) == (
        "rawvideo",
        "rgb24",
        "768x512",
        "24/1",
    )
    assert made["-i"] == "pipe:0"
    assert (made["-c:v"], made["-crf"], made["-preset"], made["-pix_fmt"]) == (
        "libx264",
        "0",
        "veryfast",
        "yuv420p",
    )
    assert made["-f"] == "mp4"
    assert "pad" not in made["-vf"]  # even sizes need no padding
    assert "-ss" not in cmd
    assert "concat" not in " ".join(cmd)


def test_encode_command_pads_odd_sizes_and_rejects_bad_settings() -> None:
    cmd = ffmpeg_encode_command("o.mp4", 65, 63, 24)
    assert cmd[cmd.index("-vf") + 1].startswith("pad=ceil(iw/2)*2:ceil(ih/2)*2")
    with pytest.raises(MediaError, match="crf"):
        ffmpeg_encode_command("o.mp4", 64, 64, 24, crf=52)
    with pytest.raises(MediaError, match="size"):
        ffmpeg_encode_command("o.mp4", 0, 64, 24)
    with pytest.raises(MediaError, match="frame rate"):
        ffmpeg_encode_command("o.mp4", 64, 64, 0)


def test_mux_command_copies_video_and_encodes_aac_from_stdin() -> None:
    cmd = ffmpeg_mux_command("v.mp4", "av.mp4", 48000, 2, exe="ff")
    joined = " ".join(cmd)
    assert "-c:v copy" in joined
    assert "-c:a aac" in joined
    audio_in = cmd.index("pipe:0")
    options = cmd[cmd.index("v.mp4") + 1 : audio_in - 1]  # those of the second input, in flag/value pairs
    given = dict(zip(options[::2], options[1::2], strict=True))
    assert given == {"-f": "f32le", "-ar": "48000", "-ac": "2"} and cmd[audio_in - 1] == "-i"
    assert cmd[1:7] == ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y"]  # global: first
    assert "-shortest" not in cmd
    assert cmd[-1] == "av.mp4"
    with pytest.raises(MediaError, match="mono or stereo"):
        ffmpeg_mux_command("v.mp4", "av.mp4", 48000, 6)


def test_rate_fraction_is_exact() -> None:
    assert rate_fraction(24) == Fraction(24)
    assert rate_fraction(23.976) == Fraction(2997, 125)
    assert rate_fraction(Fraction(24000, 1001)) == Fraction(24000, 1001)
    with pytest.raises(MediaError):
        rate_fraction(-1.0)


def test_expected_audio_samples_uses_exact_rationals() -> None:
    assert expected_audio_samples(121, 24, 48000) == 242000
    assert expected_audio_samples(1, 24, 48000) == 2000
    assert expected_audio_samples(1, 24, 44100) == 1838  # 1837.5 rounds to even
    # 10 hours at NTSC rate: float arithmetic would drift, rationals do not
    frames = 10 * 3600 * 30
    assert expected_audio_samples(frames, Fraction(30000, 1001), 44100) == round(
        Fraction(frames) * 1001 / 30000 * 44100
    )


def test_fit_audio_trims_pads_and_validates() -> None:
    audio = tone(1000)
    assert fit_audio(audio, 600).shape == (2, 600)
    np.testing.assert_array_equal(fit_audio(audio, 600), audio[:, :600])
    padded = fit_audio(audio, 1500)
    assert padded.shape == (2, 1500)
    np.testing.assert_array_equal(padded[:, :1000], audio)
    assert not padded[:, 1000:].any()
    assert fit_audio(np.zeros(10, dtype=np.float64), 10).shape == (1, 10)  # 1-D is mono
    assert fit_audio(np.zeros(10, dtype=np.float64), 10).dtype == np.float32
    with pytest.raises(MediaError, match="channels"):
        fit_audio(np.zeros((6, 10), dtype=np.float32), 10)
    with pytest.raises(MediaError, match="NaN"):
        fit_audio(np.full((1, 10), np.nan, dtype=np.float32), 10)


def test_frame_index_pattern_round_trips_and_rejects_blends() -> None:
    for index in (0, 1, 2, 255, 1023, 65535):
        for height, width in ((16, 16), (64, 64), (63, 97), (512, 768)):
            assert decode_frame_index(frame_index_pattern(index, height, width)) == index
    assert not np.array_equal(frame_index_pattern(7, 64, 64), frame_index_pattern(8, 64, 64))
    blend = (frame_index_pattern(1, 64, 64).astype(np.uint16) + frame_index_pattern(2, 64, 64)) // 2
    with pytest.raises(MediaError, match="not a frame-index pattern"):
        decode_frame_index(blend.astype(np.uint8))
    with pytest.raises(MediaError):
        frame_index_pattern(65536, 64, 64)


def test_media_error_is_a_product_error() -> None:
    assert issubclass(MediaError, Ltx2BatchError)


# ------------------------------------------------------------ MP4: counts, durations, which frame is where


@pytest.mark.parametrize("num_frames", [1, 9, 121, 300])
def test_mp4_frame_count_duration_and_order(tmp_path: Path, num_frames: int) -> None:
    frames = index_frames(num_frames)
    target = expected_audio_samples(num_frames, FPS, SR)
    path = tmp_path / "clip.mp4"
    info = write_mp4(path, frames, FPS, audio=tone(target), sample_rate=SR, preset="veryfast")

    assert info == probe(path)  # what the writer verified is what is on disk
    assert info.path == str(path)
    assert info.frame_count == num_frames
    assert info.frame_rate == FPS
    assert (info.width, info.height) == (64, 64)
    assert info.video_duration_s == pytest.approx(num_frames / FPS, abs=1e-9)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.audio_sample_rate, info.audio_channels) == (SR, 2)
    # presented audio is exact; raw decoder output carries at most one AAC frame of padding
    assert info.audio_samples == target
    assert 0 <= info.audio_samples_decoded - target < AAC_FRAME_SAMPLES
    assert info.audio_duration_s == pytest.approx(info.video_duration_s, abs=1 / SR)

    decoded = [decode_frame_index(f) for f in read_frames(path)]
    assert decoded == list(range(num_frames))  # no drop, no duplicate, no shift
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("given", [1, 17_999, 30_000])
def test_audio_is_padded_or_trimmed_to_the_video_duration(tmp_path: Path, given: int) -> None:
    """9 frames at 24 fps = 18000 samples at 48 kHz, whatever length the model returned."""
    path = tmp_path / "a.mp4"
    info = write_mp4(path, index_frames(9), FPS, audio=tone(given, channels=1), sample_rate=SR)
    assert info.audio_channels == 1
    assert info.audio_samples == 18_000
    audio, rate = read_audio(path)
    assert rate == SR
    assert audio.shape == (1, 18_000)


@pytest.mark.parametrize("total", [36_000, 30_000, 41_000])  # exact, short (padded), long (cut)
def test_streamed_audio_is_encoded_as_it_comes_and_fitted_at_the_end(tmp_path: Path, total: int) -> None:
    """A chained job's audio: pieces beside the frames, some ahead of them; the file's track is the
    video's duration exactly (18 frames at 24 fps: 36000 samples), in sync, with no set_audio pass."""
    audio = np.zeros((2, total), dtype=np.float32)
    audio[:, 24_000:] = tone(total - 24_000)  # silence, then a tone from 0.5 s
    path = tmp_path / "streamed.mp4"
    frames = index_frames(18)
    with Mp4Writer(path, FPS, count=VideoCount.packets) as writer:
        writer.write_frames(frames[:6])
        writer.write_audio(audio[:, :20_000], SR)  # ahead of the frames: 6 frames hold only 12000
        writer.write_frames(frames[6:12])
        writer.write_audio(audio[:, 20_000:30_000], SR)
        writer.write_frames(frames[12:])
        writer.write_audio(audio[:, 30_000:], SR)
    info = writer.info
    assert info is not None and info.frame_count == 18 and info.audio_samples == 36_000
    decoded, rate = read_audio(path)
    assert rate == SR and decoded.shape == (2, 36_000)
    onset = int(np.argmax(np.abs(decoded[0]) > 0.05))
    assert abs(onset - 24_000) <= 32
    if total < 36_000:
        assert np.abs(decoded[:, total + 2048 :]).max() < 0.01  # the padding is silence
    assert leftovers(tmp_path) == []


def test_streamed_and_whole_audio_do_not_mix(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="set_audio"), Mp4Writer(tmp_path / "m.mp4", FPS) as writer:  # noqa: PT012 - the second call must fail inside an open writer
        writer.write_frames(index_frames(3))
        writer.write_audio(tone(100), SR)
        writer.set_audio(tone(100), SR)
    with pytest.raises(MediaError, match="format changed"), Mp4Writer(tmp_path / "f.mp4", FPS) as writer:  # noqa: PT012 - as above
        writer.write_frames(index_frames(3))
        writer.write_audio(tone(100), SR)
        writer.write_audio(tone(100, channels=1), SR)
    assert leftovers(tmp_path) == []


def test_audio_starts_in_sync_aac_priming_is_removed(tmp_path: Path) -> None:
    """Silence then a tone from exactly 0.5 s: the decoded onset must be there (not 1024 samples late)."""
    samples = SR  # 1 s = 24 frames
    audio = np.zeros((2, samples), dtype=np.float32)
    audio[:, samples // 2 :] = tone(samples // 2)
    path = tmp_path / "sync.mp4"
    write_mp4(path, index_frames(24), FPS, audio=audio, sample_rate=SR)
    decoded, _ = read_audio(path)
    onset = int(np.argmax(np.abs(decoded[0]) > 0.05))
    assert abs(onset - samples // 2) <= 32
    settled = slice(samples // 2 + 2048, samples - 2048)
    assert np.abs(decoded[:, settled] - audio[:, settled]).max() < 0.05


def test_mp4_without_audio_has_no_audio_stream(tmp_path: Path) -> None:
    info = write_mp4(tmp_path / "v.mp4", index_frames(9), FPS)
    assert not info.has_audio
    assert info.audio_samples is None
    with pytest.raises(MediaError, match="no audio"):
        read_audio(tmp_path / "v.mp4")


@pytest.mark.parametrize("crf", [0, 18])
def test_frames_round_trip_close_to_input(tmp_path: Path, crf: int) -> None:
    frames = gradient_frames(12)
    write_mp4(tmp_path / "g.mp4", frames, FPS, crf=crf)
    back = read_frames(tmp_path / "g.mp4")
    assert back.shape == frames.shape
    error = np.abs(back.astype(np.int16) - frames).mean()
    assert error < (3 if crf == 0 else 8)


def test_saturated_colours_survive_bt709_tagging(tmp_path: Path) -> None:
    """Encoder matrix and decoder matrix must agree: a mismatch shifts saturated colours by tens of levels."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 150, 50), (30, 200, 220)]
    frames = np.stack([np.full((64, 64, 3), c, dtype=np.uint8) for c in colours])
    write_mp4(tmp_path / "c.mp4", frames, FPS, crf=0)
    back = read_frames(tmp_path / "c.mp4")
    assert np.abs(back[:, 32, 32].astype(np.int16) - np.array(colours)).max() <= 4


def test_streaming_writer_accepts_pieces_and_keeps_every_frame(tmp_path: Path) -> None:
    pieces = [7, 50, 1, 64]  # uneven, as chained chunks arrive
    path = tmp_path / "long.mp4"
    start = 0
    with Mp4Writer(path, FPS, preset="veryfast") as writer:
        for count in pieces:
            writer.write_frames(index_frames(count, first=start))
            start += count
            assert not path.exists()  # nothing at the final path until the writer closes
        writer.set_audio(tone(SR), SR)
    assert writer.frames_written == sum(pieces)
    assert writer.info is not None
    assert writer.info.frame_count == sum(pieces)
    assert writer.info.audio_samples == expected_audio_samples(sum(pieces), FPS, SR)
    assert [decode_frame_index(f) for f in read_frames(path)] == list(range(sum(pieces)))
    seam = read_frames(path, start=56, count=3)  # frames 56, 57 | 58: the second piece's seam
    assert [decode_frame_index(f) for f in seam] == [56, 57, 58]


def test_non_integer_frame_rate(tmp_path: Path) -> None:
    rate = Fraction(24000, 1001)
    info = write_mp4(tmp_path / "ntsc.mp4", index_frames(25), rate, audio=tone(10), sample_rate=SR)
    assert info.frame_count == 25
    assert info.frame_rate == pytest.approx(float(rate))
    assert info.audio_samples == expected_audio_samples(25, rate, SR)


def test_odd_sizes_are_padded_to_even(tmp_path: Path) -> None:
    frames = gradient_frames(3, height=63, width=65)
    info = write_mp4(tmp_path / "odd.mp4", frames, FPS, crf=0)
    assert (info.width, info.height) == (66, 64)
    back = read_frames(tmp_path / "odd.mp4")
    assert np.abs(back[:, :63, :65].astype(np.int16) - frames).mean() < 3


# ---------------------------------------------------------------- atomicity and failures


def test_failing_encode_leaves_nothing_and_reports_stderr(tmp_path: Path) -> None:
    path = tmp_path / "bad.mp4"
    with pytest.raises(MediaError, match=r"ffmpeg failed \(exit \d+\)") as caught:
        write_mp4(path, index_frames(30), FPS, preset="no-such-preset")
    assert "preset" in str(caught.value).lower()  # ffmpeg's own words came through
    assert not path.exists()
    assert leftovers(tmp_path) == []


def test_encoder_dying_mid_stream_raises_media_error_not_broken_pipe(tmp_path: Path) -> None:
    """Keep feeding an encoder that has exited: the writer must report ffmpeg's error, not hang."""
    path = tmp_path / "dead.mp4"
    chunk = index_frames(16, height=256, width=256)  # 3 MB per write: more than a pipe buffer
    failed = r"ffmpeg failed \(exit \d+\)"
    with pytest.raises(MediaError, match=failed), Mp4Writer(path, FPS, preset="bogus") as writer:  # noqa: PT012 - the loop is the point: writes continue after the encoder has gone
        for _ in range(50):
            writer.write_frames(chunk)
    assert not path.exists()
    assert leftovers(tmp_path) == []


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "keep.mp4"
    write_mp4(path, index_frames(5), FPS)
    before = path.read_bytes()
    with pytest.raises(MediaError):
        write_mp4(path, index_frames(9), FPS, preset="no-such-preset")
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_interrupt_inside_the_writer_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ctrl_c.mp4"
    with pytest.raises(KeyboardInterrupt), Mp4Writer(path, FPS) as writer:  # noqa: PT012 - the interrupt must arrive inside the writer's block, after frames went in
        writer.write_frames(index_frames(20))
        raise KeyboardInterrupt
    assert not path.exists()
    assert leftovers(tmp_path) == []


def test_interrupt_during_verification_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after both ffmpeg passes, before the rename: the muxed temporary must go too."""

    def interrupted(path: Path, _frames: VideoCount) -> MediaInfo:
        assert Path(path).is_file()  # the muxed temporary exists at this point
        raise KeyboardInterrupt

    monkeypatch.setattr(media_write, "probe", interrupted)
    path = tmp_path / "late.mp4"
    with pytest.raises(KeyboardInterrupt):
        write_mp4(path, index_frames(9), FPS, audio=tone(100), sample_rate=SR)
    assert not path.exists()
    assert leftovers(tmp_path) == []


def test_verification_rejects_a_file_with_the_wrong_frame_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def one_short(path: Path, frames: VideoCount) -> MediaInfo:
        info = probe(path, frames)
        return dataclasses.replace(info, frame_count=info.frame_count - 1)

    monkeypatch.setattr(media_write, "probe", one_short)
    path = tmp_path / "short.mp4"
    with pytest.raises(MediaError, match="wrote 9 frames, the file holds 8"):
        write_mp4(path, index_frames(9), FPS)
    assert not path.exists()
    assert leftovers(tmp_path) == []


def test_bad_inputs_raise_media_error_and_leave_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    with pytest.raises(MediaError, match="uint8"):
        write_mp4(path, index_frames(3).astype(np.float32), FPS)
    with pytest.raises(MediaError, match=r"\[F, H, W, 3\]"):
        write_mp4(path, index_frames(3)[..., :2], FPS)
    with pytest.raises(MediaError, match="together"):
        write_mp4(path, index_frames(3), FPS, audio=tone(10))
    with pytest.raises(MediaError, match="size changed"), Mp4Writer(path, FPS) as writer:  # noqa: PT012 - the second write is the one that must fail, inside an open writer
        writer.write_frames(index_frames(2))
        writer.write_frames(index_frames(2, height=32))
    with pytest.raises(MediaError, match="no frames"), Mp4Writer(path, FPS):
        pass
    assert not path.exists()
    assert leftovers(tmp_path) == []


def test_run_ffmpeg_error_carries_stderr_tail(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    with pytest.raises(MediaError, match="No such file"):
        run_ffmpeg([ffmpeg_exe(), "-nostdin", "-i", str(missing), "-f", "null", "-"])


def test_partials_of_finds_only_this_targets_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "clip[1].mp4"  # glob metacharacters in the name are matched literally
    # the names the writers use (ffmpeg creates its file only once it has enough input to start)
    own = [partial_path(target), partial_path(target, "v.")]
    for path in own:
        path.write_bytes(b"")
    assert partials_of(target) == sorted(own)
    for path in own:
        path.unlink()
    (tmp_path / ".clip[1].mp4.dead.partial").write_bytes(b"")
    (tmp_path / ".other.mp4.dead.partial").write_bytes(b"")
    assert partials_of(target) == [tmp_path / ".clip[1].mp4.dead.partial"]
    assert partials_of(tmp_path / "missing" / "x.mp4") == []


# ---------------------------------------------------------------- probing


@pytest.mark.parametrize("frames", [1, 9, 61])
def test_packet_count_matches_decoded_count(tmp_path: Path, frames: int) -> None:
    """The writer's cheap check counts packets: it must agree with decoding, B-frames and all."""
    path = tmp_path / "c.mp4"
    written = write_mp4(path, index_frames(frames), FPS, audio=tone(frames * SR // FPS), sample_rate=SR,
                        count=VideoCount.packets)  # fmt: skip
    decoded = probe(path, VideoCount.decode)
    assert written.frame_count == decoded.frame_count == frames
    assert probe(path, VideoCount.packets) == decoded  # audio is decoded and counted either way


def test_packet_count_sees_a_truncated_file(tmp_path: Path) -> None:
    """Half a file counts short (the writer compares the count with the frames it fed, and refuses)."""
    path = tmp_path / "t.mp4"
    write_mp4(path, index_frames(30), FPS)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert probe(path, VideoCount.packets).frame_count < 30


def test_probe_and_read_frames_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no media file"):
        probe(tmp_path / "nothing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(MediaError):
        probe(junk)
    path = tmp_path / "v.mp4"
    write_mp4(path, index_frames(10), FPS)
    with pytest.raises(MediaError, match="has 10"):
        read_frames(path, start=8, count=3)
    with pytest.raises(MediaError, match="past the last frame"):
        read_frames(path, start=10)
    assert read_frames(path, start=3, count=0).shape == (0, 64, 64, 3)
    assert [decode_frame_index(f) for f in read_frames(path, start=7)] == [7, 8, 9]


# ---------------------------------------------------------------- PNG, thumbnail, sidecar


def test_png_is_lossless_and_atomic(tmp_path: Path) -> None:
    frame = gradient_frames(1)[0]
    path = write_png(tmp_path / "out" / "still.png", frame)
    with Image.open(path) as image:
        assert image.format == "PNG"
        np.testing.assert_array_equal(np.asarray(image), frame)
    write_png(path, gradient_frames(2)[::-1])  # [F, H, W, 3]: the first frame is written
    with Image.open(path) as image:
        np.testing.assert_array_equal(np.asarray(image), gradient_frames(2)[1])
    with pytest.raises(MediaError):
        write_png(tmp_path / "bad.png", frame.astype(np.float32))
    assert not (tmp_path / "bad.png").exists()
    assert leftovers(tmp_path / "out") == []


def test_thumbnail_is_a_jpeg_of_the_first_frame(tmp_path: Path) -> None:
    frames = gradient_frames(3, height=64, width=128)
    path = write_thumbnail(tmp_path / "thumb.jpg", frames)
    with Image.open(path) as image:
        assert image.format == "JPEG"
        assert image.size == (320, 160)
        small = np.asarray(image.resize((128, 64)))
    assert np.abs(small.astype(np.int16) - frames[0]).mean() < 6
    assert write_thumbnail(tmp_path / "t2.jpg", frames[0], width=64).exists()
    with Image.open(tmp_path / "t2.jpg") as image:
        assert image.size == (64, 32)
    assert leftovers(tmp_path) == []


class _Colour(enum.Enum):
    RED = "red"


@dataclass(frozen=True)
class _Spec:
    name: str
    scale: float


def test_sidecar_round_trip_sorted_and_typed(tmp_path: Path) -> None:
    info = write_mp4(tmp_path / "v.mp4", index_frames(3), FPS)
    payload = {
        "zeta": np.int64(3),
        "alpha": np.float32(0.5),
        "array": np.arange(3, dtype=np.int16),
        "colour": _Colour.RED,
        "spec": _Spec("a", 1.5),
        "media": info,
        "path": tmp_path / "v.mp4",
        "tags": {"b", "a"},
        "pair": (1, 2),
        "buffer": array.array("h", [4, 5]),  # stands in for a tensor: anything with .tolist()
        "nested": {"ok": True, "none": None, 2: "int key"},
    }
    path = write_sidecar(tmp_path / "v.json", payload)
    text = path.read_text(encoding="utf-8")
    assert text == sidecar_text(payload)
    assert text.index('"alpha"') < text.index('"zeta"')  # sorted keys
    assert '\n  "alpha": 0.5' in text  # indent 2
    data = read_sidecar(path)
    assert data["zeta"] == 3
    assert data["array"] == [0, 1, 2]
    assert data["colour"] == "red"
    assert data["spec"] == {"name": "a", "scale": 1.5}
    assert data["media"]["frame_count"] == 3
    assert data["media"]["audio_codec"] is None
    assert data["path"] == str(tmp_path / "v.mp4")
    assert data["tags"] == ["a", "b"]
    assert data["pair"] == [1, 2]
    assert data["buffer"] == [4, 5]
    assert data["nested"] == {"ok": True, "none": None, "2": "int key"}
    assert json.loads(text) == data
    assert leftovers(tmp_path) == []


def test_sidecar_rejects_bad_values_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = write_sidecar(tmp_path / "s.json", {"a": 1})
    with pytest.raises(MediaError, match="not valid JSON"):
        write_sidecar(path, {"a": float("nan")})
    with pytest.raises(MediaError, match="object"):
        write_sidecar(path, {"a": object()})
    assert read_sidecar(path) == {"a": 1}
    assert leftovers(tmp_path) == []


def test_media_package_does_not_import_torch() -> None:
    code = (
        "import sys, ltx2_batch.media.write, ltx2_batch.media.sidecar, ltx2_batch.media.probe;"
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
