"""Media without the ffmpeg binary: the command builders and rate arithmetic, the frame-index pattern, and
the PNG, thumbnail and sidecar writers (Pillow and JSON, in process). What the encoders write, read back by
decoding, is tests/integration/test_media_io.py (ffmpeg runs in a subprocess). No torch, no Ray.
"""

from __future__ import annotations

import array
import enum
import itertools
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ltx2_batch.errors import Ltx2BatchError, MediaError
from ltx2_batch.media.ffmpeg import (
    ffmpeg_encode_command,
    ffmpeg_mux_command,
    rate_fraction,
)
from ltx2_batch.media.probe import (
    MediaInfo,
    decode_frame_index,
    frame_index_pattern,
)
from ltx2_batch.media.sidecar import read_sidecar, sidecar_text, write_sidecar
from ltx2_batch.media.write import (
    expected_audio_samples,
    fit_audio,
    partial_path,
    partials_of,
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


# ---------------------------------------------------------------- temporaries


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
    info = MediaInfo(
        str(tmp_path / "v.mp4"), 3, 24.0, 64, 64, 3 / 24, "h264"
    )  # a probe result, without audio
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
