"""RealSense input without ROS, through pyrealsense2: a live camera or a recording, as runtime `Frame`s.

    source = RealSenseSource(RealSenseConfig(source="recording.db3", spatial=True))
    for frame in source:          # Frame(rgb, depth aligned to colour, K of the colour image, stamp_ns, frame_id)
        runtime.submit(frame)

librealsense does the camera work the ROS driver would: its own post-processing filters on the depth stream
(spatial edge-preserving, temporal, hole filling; Intel's recommended order, each on by parameter) and the
alignment of depth to the colour camera (`rs.align`). Recordings: librealsense 2.59 records rosbag2 `.db3` files
(older versions `.bag`); both play back through the same pipeline, frame by frame (not in real time) unless
`realtime` is set. `feed_runtime` drives a `VirtualCameraRuntime` from a source (the DDS runner's `--realsense`).

Needs `pip install pyrealsense2` (the `realsense` extra) and, on Debian/Ubuntu, the system's `libusb-1.0-0`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from embody4d_ros.conversions import Frame

# realsense-ros names the colour optical frame so; the virtual camera's static TF hangs below it
COLOR_FRAME_ID = "camera_color_optical_frame"
RECORDING_SUFFIXES = (".bag", ".db3")


class RealSenseError(RuntimeError):
    """The RealSense source cannot start or read; the message says what to do."""


def import_pyrealsense2() -> Any:
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise RealSenseError(
            f"pyrealsense2 is not importable ({exc}); pip install 'embody4d-ros[realsense]' and, on Debian/Ubuntu, "
            "apt-get install libusb-1.0-0"
        ) from exc
    return rs


@dataclass(frozen=True)
class RealSenseConfig:
    """Where frames come from and what librealsense does to the depth.

    source: "" for the first connected camera, a serial number, or a recording (.db3 or .bag).
    width, height, fps: the streams requested from a live camera (colour rgb8 and depth z16 alike).
    spatial, temporal, hole_filling: librealsense's post-processing filters, applied in this order before the
        alignment (Intel's "Depth Post-Processing" white paper). hole_filling_mode: 0 fill from left, 1 farthest from
        around (the stereo-shadow rule), 2 nearest from around.
    realtime: play a recording at its recorded rate (dropping frames when slower) instead of every frame in turn.
    """

    source: str = ""
    width: int = 640
    height: int = 480
    fps: int = 30
    spatial: bool = False
    temporal: bool = False
    hole_filling: bool = False
    hole_filling_mode: int = 1
    realtime: bool = False

    @property
    def is_recording(self) -> bool:
        return self.source.lower().endswith(RECORDING_SUFFIXES)


class FramesetConverter:
    """librealsense framesets -> runtime Frames: filters on the depth, depth aligned to colour, metres, K, stamp."""

    def __init__(self, config: RealSenseConfig) -> None:
        rs = import_pyrealsense2()
        self.rs = rs
        self.filters = []
        if config.spatial:
            self.filters.append(rs.spatial_filter())
        if config.temporal:
            self.filters.append(rs.temporal_filter())
        if config.hole_filling:
            self.filters.append(rs.hole_filling_filter(config.hole_filling_mode))
        self.align = rs.align(rs.stream.color)
        self._last_colour: int | None = None

    def __call__(self, frameset: Any) -> Frame | None:
        """The Frame of one frameset, or None when it lacks a colour or a depth image, or pairs images more than half
        a frame period apart (librealsense's syncer pairs a new image of one stream with the previous one of the
        other until the next arrives), or repeats the colour image of the last Frame."""
        colour, depth = frameset.get_color_frame(), frameset.get_depth_frame()
        if not colour or not depth or colour.get_frame_number() == self._last_colour:
            return None
        half_period_ms = 500.0 / max(colour.get_profile().fps(), 1)
        if abs(colour.get_timestamp() - depth.get_timestamp()) > half_period_ms:
            return None
        self._last_colour = colour.get_frame_number()
        for block in self.filters:
            frameset = block.process(frameset).as_frameset()
        aligned = self.align.process(frameset)
        depth, colour = aligned.get_depth_frame(), aligned.get_color_frame()
        if not depth or not colour:
            return None
        # copies: a view would pin librealsense's frame buffer, whose small pool then drops or recycles frames
        rgb = np.array(colour.get_data(), dtype=np.uint8)
        fmt = colour.get_profile().format()
        if fmt in (self.rs.format.bgr8, self.rs.format.bgra8):
            rgb = rgb[..., 2::-1]
        elif fmt == self.rs.format.rgba8:
            rgb = rgb[..., :3]
        elif fmt != self.rs.format.rgb8:
            raise RealSenseError(f"colour format {fmt} is not supported; record or stream rgb8 or bgr8")
        metres = np.asanyarray(depth.get_data()).astype(np.float32) * np.float32(depth.get_units())
        intrinsics = colour.get_profile().as_video_stream_profile().get_intrinsics()
        K = np.array([[intrinsics.fx, 0.0, intrinsics.ppx], [0.0, intrinsics.fy, intrinsics.ppy], [0.0, 0.0, 1.0]])
        stamp_ns = int(round(colour.get_timestamp() * 1e6))  # librealsense stamps in milliseconds
        return Frame(np.ascontiguousarray(rgb), metres, K, stamp_ns, COLOR_FRAME_ID)


class RealSenseSource:
    """Frames from a live camera or a recording (see RealSenseConfig); iterate it, then `close()` (or `with`)."""

    def __init__(self, config: RealSenseConfig, timeout_ms: int = 5000) -> None:
        rs = import_pyrealsense2()
        self.config, self.timeout_ms = config, timeout_ms
        self.convert = FramesetConverter(config)
        self.pipeline = rs.pipeline()
        rs_config = rs.config()
        if config.is_recording:
            rs_config.enable_device_from_file(config.source, repeat_playback=False)
        else:
            if config.source:
                rs_config.enable_device(config.source)
            rs_config.enable_stream(rs.stream.depth, config.width, config.height, rs.format.z16, config.fps)
            rs_config.enable_stream(rs.stream.color, config.width, config.height, rs.format.rgb8, config.fps)
        try:
            if config.is_recording:
                # frame by frame must be set before playback starts with the pipeline, or the first frames are lost
                device = rs_config.resolve(rs.pipeline_wrapper(self.pipeline)).get_device()
                device.as_playback().set_real_time(config.realtime)
            self.pipeline.start(rs_config)
        except RuntimeError as exc:
            what = f"recording {config.source}" if config.is_recording else f"camera {config.source or '(first found)'}"
            raise RealSenseError(f"cannot start the RealSense {what}: {exc}") from exc
        self._open = True

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the recording ends (a live camera runs until `close()`)."""
        while self._open:
            frame = self._next_frame()
            if frame is None:
                return
            yield frame

    def _next_frame(self) -> Frame | None:
        """The next Frame, None at the end of a recording. Holds no librealsense frame on return: a recording
        played frame by frame waits until the previous frame is released."""
        while True:
            arrived, frameset = self.pipeline.try_wait_for_frames(self.timeout_ms)
            if not arrived:
                if self.config.is_recording:
                    return None
                raise RealSenseError(f"no frames from the camera within {self.timeout_ms} ms; check the USB connection")
            frame = self.convert(frameset)
            if frame is not None:
                return frame

    def close(self) -> None:
        if self._open:
            self._open = False
            self.pipeline.stop()

    def __enter__(self) -> "RealSenseSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


FILTERS = ("spatial", "temporal", "hole_filling")


def config_from_text(source: str, filters: str = "") -> RealSenseConfig:
    """RealSenseConfig from command-line text: source 'camera' (first found), a serial number or a recording, and a
    comma-separated subset of FILTERS."""
    chosen = [f.strip() for f in filters.split(",") if f.strip()]
    unknown = set(chosen) - set(FILTERS)
    if unknown:
        raise RealSenseError(f"unknown RealSense filters {sorted(unknown)}; choose among {FILTERS}")
    return RealSenseConfig(source="" if source == "camera" else source, **{name: True for name in chosen})


def feed_runtime(runtime: Any, config: RealSenseConfig, stop: threading.Event | None = None) -> int:
    """Submit every frame of the source to a `VirtualCameraRuntime` until it ends or `stop` is set; returns the
    number of frames submitted. The runtime's own scheduling (engine queue, clip windows) applies as for topics."""
    count = 0
    with RealSenseSource(config) as source:
        for frame in source:
            if stop is not None and stop.is_set():
                break
            runtime.stats.count("frames_in")
            runtime.submit(frame)
            count += 1
    if runtime.clip_mode:
        runtime.flush()
    return count
