"""Audio in and out with PyAV: decode anything to 16 kHz mono, encode Ogg/Opus.

PyAV (``av``) comes with faster-whisper, and its FFmpeg build includes libopus,
so neither direction needs an ffmpeg binary.  Everything here is blocking CPU
work: callers run it on the voice worker pool, never on the event loop.
"""

from __future__ import annotations

import base64
import io
import logging
from fractions import Fraction

import numpy as np

from .errors import AudioTooLong, BadAudio

log = logging.getLogger(__name__)

#: Whisper's input rate.
STT_RATE = 16_000
#: Opus runs at 48 kHz; Discord voice messages are 48 kHz Ogg/Opus.
OPUS_RATE = 48_000
#: Discord's waveform: up to 256 one-byte amplitude samples, base64.
WAVEFORM_POINTS = 256


def decode(data: bytes, *, rate: int = STT_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Decode an audio or video file's first audio stream to mono float32 at ``rate``.

    Raises ``BadAudio`` for anything FFmpeg cannot read and ``AudioTooLong`` as
    soon as the decoded audio passes ``max_seconds`` (checked while decoding, so
    a file lying about its length can't make us decode hours of it).
    """
    import av

    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise BadAudio(f"not a readable audio file ({exc.__class__.__name__})") from exc
    try:
        if not container.streams.audio:
            raise BadAudio("the file has no audio track")
        stream = container.streams.audio[0]
        if max_seconds is not None and container.duration is not None:
            declared = container.duration / av.time_base
            if declared > max_seconds + 1:
                raise AudioTooLong(declared, max_seconds)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        limit = None if max_seconds is None else int((max_seconds + 1) * rate)
        chunks: list[np.ndarray] = []
        total = 0

        def take(frames: list[av.AudioFrame]) -> None:
            nonlocal total
            for out in frames:
                arr = out.to_ndarray().reshape(-1)
                chunks.append(arr)
                total += arr.size
            if limit is not None and total > limit:
                raise AudioTooLong(total / rate, max_seconds or 0)

        try:
            for frame in container.decode(stream):
                take(resampler.resample(frame))
            take(resampler.resample(None))  # flush
        except av.FFmpegError as exc:
            if not chunks:
                raise BadAudio(
                    f"the audio could not be decoded ({exc.__class__.__name__})"
                ) from exc
            # A truncated upload: keep what decoded cleanly.
            log.info("audio decoding stopped early: %s", exc)
    finally:
        container.close()
    if not chunks:
        raise BadAudio("the file holds no audio")
    return np.concatenate(chunks).astype(np.float32, copy=False)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample mono float32 audio with FFmpeg's resampler."""
    import av

    if src_rate == dst_rate:
        return samples.astype(np.float32, copy=False)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
    )
    frame.sample_rate = src_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=dst_rate)
    outs = [*resampler.resample(frame), *resampler.resample(None)]
    return np.concatenate([o.to_ndarray().reshape(-1) for o in outs]).astype(np.float32)


def encode_ogg_opus(samples: np.ndarray, rate: int, *, bitrate: int = 32_000) -> bytes:
    """Mono float32 samples -> an Ogg/Opus file at 48 kHz (Discord's voice-message format)."""
    import av

    pcm = resample(samples, rate, OPUS_RATE)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=OPUS_RATE, layout="mono")
        stream.bit_rate = bitrate
        # 20 ms frames, Opus's usual size; the encoder buffers what it needs.
        step = OPUS_RATE // 50
        for i, start in enumerate(range(0, pcm.size, step)):
            chunk = pcm[start : start + step]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = OPUS_RATE
            frame.pts = i * step
            frame.time_base = Fraction(1, OPUS_RATE)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def waveform(samples: np.ndarray, points: int = WAVEFORM_POINTS) -> str:
    """Discord's voice-message waveform: base64 of up to 256 peak amplitudes (0-255)."""
    if samples.size == 0:
        return base64.b64encode(bytes(1)).decode()
    n = min(points, samples.size)
    peaks = np.array([np.abs(part).max() for part in np.array_split(samples, n)])
    top = float(peaks.max()) or 1.0
    return base64.b64encode((peaks / top * 255).astype(np.uint8).tobytes()).decode()
