"""The resize pass on a GPU (video.decoder: nvdec): NVDEC decodes, CUDA scales, x264 encodes on the CPU.

PyNvVideoCodec (the `pynvvideocodec` wheel bundles its demuxer and decoder and needs only the
NVIDIA driver) decodes the 4K recording on the GPU's video engines into NV12 frames in GPU
memory. Batches of them are scaled to every clip with the area filter (cprcoach.video.area), and
only the small clips cross to the CPU, where one x264 encoder per clip reads them on its stdin,
with the CPU path's encoder settings: H100 and H200 have no video encoders, and x264 on clips this
small costs little. A job holds one of its GPU's decoder slots (cprcoach.gpu's nvdec pool), so
several decode jobs share a GPU beside its flow and model jobs.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ffmpeg
import numpy as np
import torch
from tqdm import tqdm

from cprcoach.atomic import partial_path
from cprcoach.errors import CprCoachError, VideoError
from cprcoach.gpu import NVDEC, claim_cuda_device
from cprcoach.video.area import scale_nv12
from cprcoach.video.ffmpeg import ffmpeg_exe
from cprcoach.video.probe import VideoInfo

if TYPE_CHECKING:
    from cprcoach.video.resize import ClipSpec

log = logging.getLogger(__name__)

SETTING = "video.decoder"
# What NVDEC decodes to NV12 and the clips hold as they are: 8-bit 4:2:0, limited range. Full-range
# yuvj420p would need the range conversion swscale does on the CPU path.
NV12_SOURCES = ("yuv420p",)
USE_CPU = "set video.decoder: cpu in config.yaml"


def load_pynvvideocodec() -> Any:
    """The PyNvVideoCodec module; missing, or without a driver it can load, a clear error."""
    try:
        import PyNvVideoCodec
    except Exception as error:  # ImportError, or the driver check its import runs
        raise CprCoachError(
            f"video.decoder is nvdec, but PyNvVideoCodec cannot be loaded ({str(error).splitlines()[0]})",
            fix=f"pip install pynvvideocodec==2.2.4 (requirements.txt pins it) on a machine with the NVIDIA driver, or {USE_CPU}",
        ) from None
    return PyNvVideoCodec


def check_decodable(info: VideoInfo) -> None:
    """NVDEC writes NV12, which holds 8-bit 4:2:0 pictures; other recordings need the CPU decoder."""
    if info.pix_fmt not in NV12_SOURCES:
        raise VideoError(
            f"its pictures are {info.pix_fmt}, but the GPU decoder handles 8-bit 4:2:0 in the limited range"
            f" ({', '.join(NV12_SOURCES)})",
            path=info.path,
            fix=f"{USE_CPU} for such recordings",
        )


# A resize job whose GPU decoders are all taken (more nvdec jobs than slots: a run without the
# workstation profile's nvdec resource) waits for one rather than fail.
SLOT_WAIT_S = 1800


def claim_decoder(sessions_per_gpu: int) -> str:
    """The CUDA device of one free decoder slot (cprcoach.gpu's nvdec pool)."""
    return claim_cuda_device(pool=NVDEC, slots=sessions_per_gpu, setting=SETTING, wait_s=SLOT_WAIT_S)


def device_name(device: str) -> str:
    """The GPU's name, as the sidecar records it."""
    return torch.cuda.get_device_name(torch.device(device))


def coded_size(info: VideoInfo) -> tuple[int, int]:
    """(width, height) of the pictures as coded: `info` gives them as displayed, after the rotation."""
    return (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)


def as_nv12(frame: Any, width: int, height: int) -> torch.Tensor:
    """A decoded frame as a (H*3/2, W) uint8 tensor: the luma rows, then the interleaved chroma rows.

    A surface with more rows than the picture (a coded height padded for the codec's blocks) has
    its chroma after the padded luma: both are cropped to the picture.
    """
    tensor = torch.from_dlpack(frame)
    shape = (height * 3 // 2, width)
    if tuple(tensor.shape) == shape:
        return tensor
    if tensor.numel() == shape[0] * shape[1]:
        return tensor.reshape(shape)
    if tensor.ndim == 2 and tensor.shape[1] == width and tensor.shape[0] % 3 == 0 and tensor.shape[0] > shape[0]:
        coded = tensor.shape[0] * 2 // 3
        return torch.cat([tensor[:height], tensor[coded : coded + height // 2]])
    raise CprCoachError(
        f"PyNvVideoCodec returned a frame of shape {tuple(tensor.shape)}, not NV12 {shape}",
        fix=f"use PyNvVideoCodec 2.2.4 (requirements.txt), or {USE_CPU}",
    )


def open_decoder(source: Path, device: str) -> tuple[Any, Any]:
    """PyNvVideoCodec's demuxer and decoder of `source` on `device`, on PyTorch's current stream.

    The decoder's copies then come before PyTorch's reads of a frame, and its next frame after
    them; `device` becomes the process's current GPU, so PyTorch and the decoder share its context.
    """
    nvc = load_pynvvideocodec()
    torch.cuda.set_device(device)
    try:
        demuxer = nvc.CreateDemuxer(filename=str(source))
        decoder = nvc.CreateDecoder(
            gpuid=torch.cuda.current_device(),
            codec=demuxer.GetNvCodecId(),
            cudacontext=0,
            cudastream=torch.cuda.current_stream().cuda_stream,
            usedevicememory=True,
        )
    except Exception as error:
        raise VideoError(
            f"the GPU decoder cannot open it ({str(error).splitlines()[0] if str(error) else type(error).__name__})",
            path=source,
            fix=f"check the driver exposes NVDEC (libnvcuvid) and the codec is one it decodes, or {USE_CPU}",
        ) from None
    return demuxer, decoder


def nvdec_batches(
    source: Path, demuxer: Any, decoder: Any, device: str, width: int, height: int, batch: int
) -> Iterator[torch.Tensor]:
    """The recording's frames decoded on `device`, as (B, H*3/2, W) NV12 batches in GPU memory.

    One buffer is refilled for every batch: the caller scales a batch before asking for the next.
    """
    buffer = torch.empty((batch, height * 3 // 2, width), dtype=torch.uint8, device=device)
    filled = 0
    try:
        for packet in demuxer:  # its last packet flushes the decoder
            for frame in decoder.Decode(packet):
                buffer[filled].copy_(as_nv12(frame, width, height))
                filled += 1
                if filled == batch:
                    yield buffer
                    filled = 0
    except (CprCoachError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as error:
        raise VideoError(
            f"the GPU decoder failed inside it ({error}); it is corrupt or truncated",
            path=source,
            fix="copy the recording again from the source, or remove it from raw_dir",
        ) from None
    if filled:
        yield buffer[:filled]


def resampled_indices(source_frames: int, source_fps: float, fps: float, frames: int) -> np.ndarray:
    """For each of the `frames` output frames at `fps`, the source frame nearest to it in time."""
    indices = np.floor(np.arange(frames) * source_fps / fps + 0.5).astype(np.int64)
    return np.minimum(indices, source_frames - 1)


class ClipEncoder:
    """One clip's x264 encoder: an ffmpeg process that reads I420 frames on its stdin."""

    FIX = "check the disk has room for the clips, and video.encoder's settings"

    def __init__(self, clip: ClipSpec, fps: float, options: dict[str, Any]) -> None:
        self.clip = clip
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - read when the encoder ends
        raw = ffmpeg.input("pipe:", f="rawvideo", pix_fmt="yuv420p", s=f"{clip.width}x{clip.height}", r=fps)
        command = (
            ffmpeg.output(raw, str(partial_path(clip.path)), **options)
            .global_args("-hide_banner", "-nostats", "-loglevel", "error")
            .overwrite_output()
            .compile(cmd=ffmpeg_exe())
        )
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.errors)

    def write(self, frames: bytes) -> None:
        try:
            self.process.stdin.write(frames)
        except BrokenPipeError:
            self.finish()  # raises with the encoder's message
            raise CprCoachError(
                f"x264 stopped reading the frames of clip {self.clip.name}", path=self.clip.path, fix=self.FIX
            ) from None

    def finish(self) -> None:
        """Wait for the clip to be written; an encoder that failed is an error with its message."""
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        if self.process.wait() != 0:
            self.errors.seek(0)
            message = self.errors.read().decode(errors="replace").strip()[-800:]
            raise CprCoachError(
                f"x264 could not encode clip {self.clip.name}: {message or f'exit status {self.process.returncode}'}",
                path=self.clip.path,
                fix=self.FIX,
            )

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def encode_clips(
    batches: Iterable[torch.Tensor],
    info: VideoInfo,
    clips: Sequence[ClipSpec],
    fps: float,
    frames: int,
    options: dict[str, Any],
) -> None:
    """Scale NV12 batches of the recording `info` describes to every clip and encode them at `fps`.

    `frames` output frames are written, each the source frame nearest in time (`resampled_indices`),
    as ffmpeg's fps filter picks them on the CPU path. The batches may live on any device.
    """
    coded_w, coded_h = coded_size(info)
    sizes = [(clip.width, clip.height) for clip in clips]
    wanted = resampled_indices(info.frames, info.fps, fps, frames)
    encoders: list[ClipEncoder] = []
    try:
        for clip in clips:
            encoders.append(ClipEncoder(clip, fps, options))
        start = 0
        with tqdm(total=frames, unit="frame", desc=Path(info.path).name, leave=False, disable=None) as bar:
            for batch in batches:
                stop = start + batch.shape[0]
                picked = wanted[(wanted >= start) & (wanted < stop)] - start
                if len(picked):
                    chosen = batch.index_select(0, torch.from_numpy(picked).to(batch.device))
                    for encoder, data in zip(
                        encoders, scale_nv12(chosen, coded_w, coded_h, sizes, info.rotation), strict=True
                    ):
                        encoder.write(data)
                    bar.update(len(picked))
                start = stop
        for encoder in encoders:
            encoder.finish()
    except torch.cuda.OutOfMemoryError:
        for encoder in encoders:
            encoder.kill()
        raise CprCoachError(
            "the GPU ran out of memory scaling a batch of frames",
            path=info.path,
            fix="lower video.nvdec.batch or video.nvdec.sessions_per_gpu (the flow and model jobs share the GPU)",
        ) from None
    except BaseException:
        for encoder in encoders:
            encoder.kill()
        raise
