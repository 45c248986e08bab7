"""Media I/O against the real ffmpeg binary and real PyAV decoding: counts, durations, seams, atomicity.

The writers run ffmpeg in a subprocess, so these live in the integration tier (the pure command builders,
arithmetic, PNG, thumbnail and sidecar tests are tests/unit/test_media.py). No torch, no Ray. Every check
reads the written file back (frames by decoding, audio by decoding), because a command line that "should"
be exact is not evidence that it is.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ltx2_batch.errors import MediaError
from ltx2_batch.media import write as media_write
from ltx2_batch.media.ffmpeg import ffmpeg_exe, run_ffmpeg
from ltx2_batch.media.probe import MediaInfo, VideoCount, decode_frame_index, probe, read_audio, read_frames
from ltx2_batch.media.write import (
    AAC_FRAME_SAMPLES,
    Mp4Writer,
    expected_audio_samples,
    write_mp4,
)
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.worker.job_files import JobFiles
from tests.unit.test_job_files import RUN, _job, _result
from tests.unit.test_media import FPS, SR, gradient_frames, index_frames, leftovers, tone


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


# ---------------------------------------------------------------- a job's files (worker/job_files.py)


def test_a_window_is_written_with_its_sidecar_last_and_described(tmp_path: Path) -> None:
    files = JobFiles(OutputLayout(tmp_path), RUN, video_crf=0)
    job = _job(9)
    written = files.write_window(job, _result(9), render_s=1.25)
    info = probe(written.output_path)
    assert info.frame_count == 9 == written.frames_written and info.frame_rate == pytest.approx(24.0)
    assert info.audio_samples == 16000 * 9 // 24  # cut to the video's length in samples
    assert read_frames(written.output_path).shape == (9, 32, 64, 3)
    assert Path(written.thumbnail_path).is_file()
    sidecar = json.loads(Path(written.sidecar_path).read_text())
    assert sidecar["job_id"] == job.job_id and sidecar["frames_written"] == 9
    assert sidecar["output"] == f"generated/{job.job_id}.mp4" and sidecar["run_id"] == "r1"
    assert sidecar["timings"] == {"render_s": 1.25, "encode_s": written.encode_s, "stage1": 0.5}
    assert (written.device, written.memory_policy, written.duration_s) == ("cpu", "resident", 9 / 24)
    sidecar_mtime = Path(written.sidecar_path).stat().st_mtime_ns
    assert sidecar_mtime >= Path(written.output_path).stat().st_mtime_ns  # completion marker comes last
