"""Opening a manifest's conditioning files far enough to know a model could use them: headers, one frame.

Owns `image_problem` (the header parses, the size is within the pixel limit, the chunk checksums hold:
Pillow's `verify`, which reads the file once without decoding its pixels) and `video_problem` (PyAV opens
it, it has a video stream within the pixel limit, and its first frame decodes). A text file named `.png`,
a 0-byte image, a decompression bomb (a small file declaring a huge frame) or a reference video that is
not one is refused here, during validation, instead of after a model has loaded. Must not decode more than
one frame of anything, nor judge paths (the resolver did) or raise: it returns the reason in words.
"""

from __future__ import annotations

import warnings

from PIL import Image, UnidentifiedImageError


def _too_big(width: int, height: int, max_pixels: int) -> str | None:
    if width * height <= max_pixels:
        return None
    return (
        f"is {width}x{height} ({width * height:,} pixels), over the limit of {max_pixels:,}; scale it down "
        "or raise limits.max_image_pixels"
    )


def image_problem(path: str, max_pixels: int) -> str | None:
    """Why the file at `path` is not a usable conditioning image, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
            with Image.open(path) as image:  # reads the header only
                width, height = image.size
                if problem := _too_big(width, height, max_pixels):
                    return problem
                image.verify()
    except Image.DecompressionBombError as exc:
        return f"declares a frame too large to decode ({exc}); scale it down"
    except UnidentifiedImageError:
        return "is not an image Pillow can read (empty, truncated, or another kind of file)"
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow reports broken chunks as SyntaxError
        return f"is a damaged image: {exc}"
    return None


def video_problem(path: str, max_pixels: int) -> str | None:
    """Why the file at `path` is not a usable reference video, or None (decodes its first frame)."""
    import av  # the video library loads only when a manifest has a reference video

    try:
        with av.open(path) as container:
            if not container.streams.video:
                return "has no video stream"
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if problem := _too_big(width, height, max_pixels):
                return problem
            for _frame in container.decode(stream):
                return None
            return "has a video stream with no decodable frame"
    except (av.FFmpegError, OSError, ValueError) as exc:
        return f"is not a video PyAV can decode: {exc}"


def audio_problem(path: str) -> str | None:
    """Why the file at `path` cannot drive an a2vid job, or None (an audio stream with a decodable frame)."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.audio:
                return "has no audio stream"
            for _frame in container.decode(container.streams.audio[0]):
                return None
            return "has an audio stream with no decodable frame"
    except (av.FFmpegError, OSError, ValueError) as exc:
        return f"is not audio PyAV can decode: {exc}"


def audio_duration_s(path: str) -> float | None:
    """The audio stream's duration in seconds (container metadata), None when the file does not say."""
    import av

    with av.open(path) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return container.duration / 1e6 if container.duration else None


def video_facts(path: str) -> tuple[float, int, int, int]:
    """(fps, frames, width, height) of a video's first stream (frames decoded when the container does not
    count them). Only called on a file `video_problem` accepted."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.base_rate or 0)
        width, height = stream.codec_context.width, stream.codec_context.height
        frames = stream.frames or sum(1 for _ in container.decode(stream))
    return fps, frames, width, height
