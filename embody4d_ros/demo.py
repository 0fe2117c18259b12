"""`embody4d demo`: a simulated RealSense clip through the whole virtual-camera path, scored against ground truth.

1. MuJoCo renders a Franka Panda moving on a table from a source camera and from the true virtual camera
   (`offline_training.sim.render_two_view_clip`).
2. The source stream is recorded as a rosbag2 the way realsense-ros records it (rgb8 colour, aligned 16UC1 depth in
   millimetres, camera_info, default topic names, header stamps at the camera rate) and read back from the bag, so
   the demo exercises the same decoding as `augment-bag`. The recorded depth is what a RealSense-like stereo camera
   would give (`--depth-model stereo`, model.depth_sensor: noise, edge bands, shadows, flying pixels, dropouts).
3. Every frame is warped to the virtual camera and completed by an engine: by default `torch`, the Embody4D network
   with the shipped tiny weights (model/weights/tiny); `--engine warp` for classical hole filling only.
4. Outputs in --out: `side_by_side.mp4` (source | warp | filled | ground truth), `report.md`, `report.json`
   (per-frame latency, coverage against what the source can see, PSNR against the simulator's virtual view over all
   pixels and over the disoccluded ones, for the engine and for the classical fills push-pull and Telea on the same
   warps) and the bag itself. The demo robot (Panda) is a training morphology: held-out numbers are in
   docs/EVALUATION.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

LABELS = ("source", "warp", "filled", "ground truth")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/demo", help="output directory (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=30, help="clip length (default: %(default)s)")
    parser.add_argument("--height", type=int, default=480, help="image height (default: %(default)s)")
    parser.add_argument("--width", type=int, default=640, help="image width (default: %(default)s)")
    parser.add_argument("--robot", default="panda", help="robot from the sim library (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="scene, motion and camera seed (default: %(default)s)")
    parser.add_argument(
        "--min-yaw", type=float, default=10.0, help="smallest yaw of the virtual camera from the source, degrees"
    )
    parser.add_argument(
        "--max-yaw", type=float, default=20.0, help="largest yaw of the virtual camera from the source, degrees"
    )
    parser.add_argument(
        "--engine", default="torch", help="generation engine (default: %(default)s, the shipped tiny model)"
    )
    parser.add_argument(
        "--inpaint", default="pushpull", choices=("pushpull", "telea"), help="hole filling of the warp engine"
    )
    parser.add_argument(
        "--fps", type=float, default=30.0, help="camera rate of the recorded stamps (default: %(default)s)"
    )
    parser.add_argument(
        "--storage", default="sqlite3", choices=("sqlite3", "mcap"), help="rosbag2 storage (default: %(default)s)"
    )
    parser.add_argument(
        "--depth-model",
        default="stereo",
        choices=("clean", "stereo", "mono"),
        help="depth recorded into the bag: as a RealSense-like stereo camera gives it (default), the "
        "simulator's clean depth, or a monocular estimate (model.depth_sensor)",
    )


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    scale = max(0.4, image.shape[0] / 600)
    cv2.putText(out, text, (8, int(24 * scale + 4)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (8, int(24 * scale + 4)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_side_by_side(path: Path, columns: list[np.ndarray], fps: float) -> None:
    """mp4 of the (T, H, W, 3) uint8 clips in `columns` placed left to right, each labelled with LABELS."""
    import imageio.v2 as imageio

    with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=8) as writer:
        for frames in zip(*columns):
            writer.append_data(np.concatenate([_label(f, name) for f, name in zip(frames, LABELS)], axis=1))


def _stats_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {
        "mean": float(ms.mean()),
        "p50": float(np.median(ms)),
        "p95": float(np.percentile(ms, 95)),
        "max": float(ms.max()),
    }


def run(args: argparse.Namespace) -> int:
    from embody4d_ros.bag_io import REALSENSE, read_rgbd_frames, write_rgbd_bag
    from model.depth_sensor import expected_inverse_depth_error, sensor_depth
    from model.engines import EngineError, create_engine
    from model.engines.warp import WarpEngine
    from model.geometry import WarpSettings, invert_transform
    from model.virtual_view import prepare_virtual_view
    from offline_training.metrics import psnr, visible_in_source
    from offline_training.sim import CameraConfig, render_two_view_clip

    try:
        engine = create_engine(args.engine, **({"inpaint": args.inpaint} if args.engine == "warp" else {}))
    except EngineError as exc:
        print(f"[demo] error: {exc}")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    print(
        f"[demo] rendering {args.frames} frames of {args.robot} at {args.width}x{args.height} "
        "(source and true virtual view)"
    )
    # a virtual camera a moderate orbit away from the real one, as a robot set-up would place it
    cameras = CameraConfig(yaw_deg=(args.min_yaw, args.max_yaw), pitch_deg=(0.0, 8.0))
    sample = render_two_view_clip(
        robot=args.robot,
        num_frames=args.frames,
        height=args.height,
        width=args.width,
        seed=args.seed,
        camera_config=cameras,
    )
    render_s = time.perf_counter() - started

    bag_path = out / "source_bag"
    if bag_path.exists():
        shutil.rmtree(bag_path)  # the demo's own output from an earlier run
    period_ns = int(round(1e9 / args.fps))
    stamps = [1_700_000_000 * 10**9 + i * period_ns for i in range(args.frames)]
    # the camera's depth, not the simulator's: a real RealSense records noise, edge bands, shadows and holes
    recorded_depth = sensor_depth(sample["src_depth"], sample["K_src"], args.depth_model, seed=args.seed)
    write_rgbd_bag(bag_path, sample["src_rgb"], recorded_depth, sample["K_src"], stamps, storage=args.storage)
    frames = list(read_rgbd_frames(bag_path))
    if len(frames) != args.frames:
        print(f"[demo] error: wrote {args.frames} frames to {bag_path} but read back {len(frames)}")
        return 1
    print(f"[demo] recorded and read back {len(frames)} RGB-D frames from {bag_path} ({args.storage})")

    K_dst, T_dst_src = sample["K_tgt"], sample["T_tgt_src"]
    out_hw = sample["tgt_rgb"].shape[1:3]
    # the warp is told how noisy the camera's depth is, as a user configures it for theirs
    noise = expected_inverse_depth_error(args.depth_model, sample["K_src"], args.width)
    settings = WarpSettings(depth_noise_inv_m=noise)

    def process(index: int):
        frame = frames[index]
        assert frame.depth is not None  # read_rgbd_frames requires depth by default
        t0 = time.perf_counter()
        view = prepare_virtual_view(
            frame.rgb, frame.depth, frame.K, T_dst_src[index], out_hw=out_hw, K_dst=K_dst, settings=settings
        )
        t1 = time.perf_counter()
        filled = engine.generate(view.request)[0]
        t2 = time.perf_counter()
        return view, filled, t1 - t0, t2 - t1

    process(0)  # compiles (or loads) the numba kernels once, as a node does at start-up
    classical = {"pushpull": WarpEngine(), "telea": WarpEngine(inpaint="telea")}
    warped_frames: list[np.ndarray] = []
    mask_frames: list[np.ndarray] = []
    filled_frames: list[np.ndarray] = []
    warp_s: list[float] = []
    fill_s: list[float] = []
    classical_filled: dict[str, list[np.ndarray]] = {name: [] for name in classical}
    for index in range(len(frames)):
        view, image, seconds_warp, seconds_fill = process(index)
        warped_frames.append(view.warp.image[0])
        mask_frames.append(view.warp.mask[0])
        filled_frames.append(image)
        warp_s.append(seconds_warp)
        fill_s.append(seconds_fill)
        for name, baseline in classical.items():
            classical_filled[name].append(baseline.generate(view.request)[0])
    warped, masks, filled = np.stack(warped_frames), np.stack(mask_frames), np.stack(filled_frames)

    truth = sample["tgt_rgb"]
    visible = np.stack(
        [
            visible_in_source(
                sample["tgt_depth"][t], sample["src_depth"][t], K_dst, sample["K_src"], invert_transform(T_dst_src[t])
            )
            for t in range(args.frames)
        ]
    )
    source_rgb = np.stack([f.rgb for f in frames])
    video_path = out / "side_by_side.mp4"
    write_side_by_side(video_path, [source_rgb, warped, filled, truth], fps=min(args.fps, 10.0))

    report = {
        "robot": args.robot,
        "seed": args.seed,
        "frames": args.frames,
        "resolution": [args.width, args.height],
        "engine": engine.name,
        "inpaint": args.inpaint if args.engine == "warp" else None,
        "target": {
            "yaw_offset_deg": sample["meta"]["yaw_offset_deg"],
            "pitch_offset_deg": sample["meta"]["pitch_offset_deg"],
            "baseline_m": sample["meta"]["baseline_m"],
            "view_angle_deg": sample["meta"]["view_angle_deg"],
        },
        "bag": {
            "path": str(bag_path),
            "storage": args.storage,
            "color": REALSENSE.color,
            "depth": REALSENSE.depth,
            "camera_info": REALSENSE.camera_info,
            "depth_encoding": "16UC1 (mm)",
            "depth_model": args.depth_model,
        },
        "latency_ms": {
            "warp": _stats_ms(warp_s),
            "fill": _stats_ms(fill_s),
            "total": _stats_ms([a + b for a, b in zip(warp_s, fill_s)]),
        },
        "coverage": float(masks.mean()),
        "source_visible_fraction": float(visible.mean()),
        "psnr_db": {
            "filled_all_pixels": psnr(filled, truth),
            "filled_disoccluded": psnr(filled, truth, ~masks),
            "warp_covered_pixels": psnr(warped, truth, masks),
            "warp_covered_and_visible": psnr(warped, truth, masks & visible),
            **{
                f"{name}_{key}": value
                for name, images in classical_filled.items()
                for key, value in (
                    ("all_pixels", psnr(np.stack(images), truth)),
                    ("disoccluded", psnr(np.stack(images), truth, ~masks)),
                )
            },
        },
        "render_s": render_s,
        "wall_s": time.perf_counter() - started,
        "machine": _machine_description(),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(_markdown(report, video_path.name))
    latency, psnr_db = report["latency_ms"], report["psnr_db"]
    print(
        f"[demo] latency {latency['total']['mean']:.1f} ms/frame (warp {latency['warp']['mean']:.1f}, "
        f"fill {latency['fill']['mean']:.1f}); coverage {report['coverage']:.3f} of "
        f"{report['source_visible_fraction']:.3f} visible; PSNR covered {psnr_db['warp_covered_pixels']:.2f} dB, "
        f"filled {psnr_db['filled_all_pixels']:.2f} dB (disoccluded {psnr_db['filled_disoccluded']:.2f}; "
        f"Telea {psnr_db['telea_disoccluded']:.2f}, push-pull {psnr_db['pushpull_disoccluded']:.2f})"
    )
    print(f"[demo] wrote {video_path}, {out / 'report.md'}, {out / 'report.json'}")
    return 0


def _machine_description() -> str:
    """CPU, core count and load: latency on a shared machine means little without them."""
    parts = [platform.machine(), platform.processor(), f"{os.cpu_count()} cores", "CPU only"]
    if hasattr(os, "getloadavg"):
        parts.append(f"1-min load average {os.getloadavg()[0]:.1f}")
    return ", ".join(part for part in parts if part)


def _markdown(report: dict, video_name: str) -> str:
    latency = report["latency_ms"]
    rows = "\n".join(
        f"| {name} | " + " | ".join(f"{latency[name][stat]:.1f}" for stat in ("mean", "p50", "p95", "max")) + " |"
        for name in ("warp", "fill", "total")
    )
    psnr_db = report["psnr_db"]
    target = report["target"]
    width, height = report["resolution"]

    def all_and_disoccluded(method: str) -> str:
        return f"{psnr_db[method + '_all_pixels']:.2f} / {psnr_db[method + '_disoccluded']:.2f} dB"

    return f"""# Embody4D-ROS demo

{report["frames"]} frames of a simulated {report["robot"]} at {width}x{height}, recorded as a
realsense-style rosbag2 ({report["bag"]["storage"]}: `{report["bag"]["color"]}`, `{report["bag"]["depth"]}` in
{report["bag"]["depth_encoding"]}, `{report["bag"]["camera_info"]}`), read back, warped to the simulator's true virtual
camera ({target["view_angle_deg"]:.1f} deg from the source, {target["baseline_m"]:.2f} m baseline) and completed by the
`{report["engine"]}` engine ({report["inpaint"]}). Video: `{video_name}` (source | warp | filled | ground truth).

## Latency per frame (ms, after warm-up; {report["machine"]})

| stage | mean | p50 | p95 | max |
|---|---|---|---|---|
{rows}

## Quality against the simulator's virtual view

| metric | value |
|---|---|
| coverage (warp mask) | {report["coverage"]:.3f} |
| fraction of the target the source can see | {report["source_visible_fraction"]:.3f} |
| PSNR, warp on covered pixels | {psnr_db["warp_covered_pixels"]:.2f} dB |
| PSNR, warp on covered pixels the source sees | {psnr_db["warp_covered_and_visible"]:.2f} dB |
| PSNR, `{report["engine"]}` engine, all pixels / disoccluded | {all_and_disoccluded("filled")} |
| PSNR, warp + push-pull fill, all pixels / disoccluded | {all_and_disoccluded("pushpull")} |
| PSNR, warp + Telea, all pixels / disoccluded | {all_and_disoccluded("telea")} |

The demo robot is a training morphology; held-out numbers (unseen morphologies) are in docs/EVALUATION.md.

Rendering took {report["render_s"]:.1f} s; the whole demo {report["wall_s"]:.1f} s.
"""
