"""Compiled per-pixel passes of the robot layer (numba, serial, cached on disk): one pass per step instead of a
dozen full-image numpy temporaries. The numpy-level meaning of each is in `model.robot.compose` and
`model.robot.scene_memory`."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def cut_scene(
    cut,
    robot_depth,
    memory_rgb,
    memory_depth,
    use_memory,
    v_lo,
    u_lo,
    out_rgb,
    out_depth,
    cut_reliability,
    out_reliability,
):  # pragma: no cover - compiled
    """``cut`` covers the image from row v_lo and column u_lo (a box holding every cut pixel; ``out_*`` already hold
    the source): the ``cut`` pixels get depth 0, or the memory's colour and depth where it has a background behind
    the rendered robot; with ``cut_reliability`` their reliability becomes 1."""
    for i in range(cut.shape[0]):
        v = v_lo + i
        for j in range(cut.shape[1]):
            if not cut[i, j]:
                continue
            u = u_lo + j
            if cut_reliability:
                out_reliability[v, u] = 1.0
            if (
                use_memory
                and memory_depth[v, u] > 0
                and (robot_depth[v, u] == 0 or memory_depth[v, u] > robot_depth[v, u])
            ):
                out_depth[v, u] = memory_depth[v, u]
                for k in range(3):
                    out_rgb[v, u, k] = memory_rgb[v, u, k]
            else:
                out_depth[v, u] = 0.0


@numba.njit(cache=True, nogil=True)
def any_positive(depth):  # pragma: no cover - compiled
    """Whether any pixel of ``depth`` (H, W) is > 0, stopping at the first (numpy's reductions read every pixel)."""
    for v in range(depth.shape[0]):
        for u in range(depth.shape[1]):
            if depth[v, u] > 0:
                return True
    return False


@numba.njit(cache=True, nogil=True, error_model="numpy")
def sample_source(
    dst_depth,
    dst_mask,
    dst_normal,
    K_dst,
    T_src_dst,
    src_rgb,
    src_depth,
    src_model_depth,
    src_interior,
    K_src,
    model_tolerance,
    sensor_tolerance,
    min_facing,
    v_lo,
    v_hi,
    u_lo,
    u_hi,
    seen,
    colour,
    normal_src,
):  # pragma: no cover - compiled
    """For every virtual robot pixel (all inside rows v_lo..v_hi-1, columns u_lo..u_hi-1): its surface point in the
    source camera; ``seen`` where the source saw it (inside the eroded source silhouette, model depth and sensor
    depth agree, facing the source), with the bilinear source ``colour``; ``normal_src`` its normal in the source
    frame."""
    src_height, src_width = src_depth.shape
    R, t = T_src_dst[:3, :3], T_src_dst[:3, 3]
    for v in range(v_lo, v_hi):
        for u in range(u_lo, u_hi):
            if not dst_mask[v, u]:
                continue
            z = dst_depth[v, u]
            xd, yd = (u - K_dst[0, 2]) * z / K_dst[0, 0], (v - K_dst[1, 2]) * z / K_dst[1, 1]
            px = R[0, 0] * xd + R[0, 1] * yd + R[0, 2] * z + t[0]
            py = R[1, 0] * xd + R[1, 1] * yd + R[1, 2] * z + t[1]
            pz = R[2, 0] * xd + R[2, 1] * yd + R[2, 2] * z + t[2]
            n0, n1, n2 = dst_normal[v, u, 0], dst_normal[v, u, 1], dst_normal[v, u, 2]
            nx = R[0, 0] * n0 + R[0, 1] * n1 + R[0, 2] * n2
            ny = R[1, 0] * n0 + R[1, 1] * n1 + R[1, 2] * n2
            nz = R[2, 0] * n0 + R[2, 1] * n1 + R[2, 2] * n2
            normal_src[v, u, 0], normal_src[v, u, 1], normal_src[v, u, 2] = nx, ny, nz
            if pz <= 0:
                continue
            us = K_src[0, 0] * px / pz + K_src[0, 2]
            vs = K_src[1, 1] * py / pz + K_src[1, 2]
            if us < 0 or vs < 0 or us > src_width - 1 or vs > src_height - 1:
                continue
            ui, vi = int(us + 0.5), int(vs + 0.5)
            if not src_interior[vi, ui]:
                continue
            if abs(src_model_depth[vi, ui] - pz) >= model_tolerance + 0.005 * pz:
                continue
            sensor = src_depth[vi, ui]
            if sensor > 0 and abs(sensor - pz) >= sensor_tolerance + 0.01 * pz:
                continue
            if nx * px + ny * py + nz * pz >= -min_facing * np.sqrt(px * px + py * py + pz * pz):
                continue
            seen[v, u] = True
            u0, v0 = min(int(us), src_width - 2), min(int(vs), src_height - 2)
            fu, fv = us - u0, vs - v0
            for k in range(3):
                colour[v, u, k] = (
                    (1 - fu) * (1 - fv) * src_rgb[v0, u0, k]
                    + fu * (1 - fv) * src_rgb[v0, u0 + 1, k]
                    + (1 - fu) * fv * src_rgb[v0 + 1, u0, k]
                    + fu * fv * src_rgb[v0 + 1, u0 + 1, k]
                )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def merge(
    robot_mask,
    robot_depth,
    colour,
    scene_rgb,
    scene_depth,
    scene_mask,
    scene_coverage,
    z_tolerance,
    v_lo,
    v_hi,
    u_lo,
    u_hi,
    out_rgb,
    out_depth,
    out_mask,
    out_coverage,
    out_robot,
):  # pragma: no cover - compiled
    """Z-test of the robot against the warped scene in rows v_lo..v_hi-1, columns u_lo..u_hi-1 (the box holding
    every robot pixel; outside it the outputs already hold the scene). A robot pixel in front takes `colour`, which
    holds the source's colour where seen and the fitted appearance elsewhere."""
    for v in range(v_lo, v_hi):
        for u in range(u_lo, u_hi):
            robot = robot_mask[v, u] and (not scene_mask[v, u] or robot_depth[v, u] <= scene_depth[v, u] + z_tolerance)
            out_robot[v, u] = robot
            if not robot:
                out_mask[v, u] = scene_mask[v, u]
                out_depth[v, u] = scene_depth[v, u]
                out_coverage[v, u] = scene_coverage[v, u]
                for k in range(3):
                    out_rgb[v, u, k] = scene_rgb[v, u, k]
                continue
            out_mask[v, u] = True
            out_depth[v, u] = robot_depth[v, u]
            out_coverage[v, u] = 1.0
            for k in range(3):
                out_rgb[v, u, k] = np.uint8(min(max(colour[v, u, k] + 0.5, 0.0), 255.0))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def memory_update(
    rgb,
    depth,
    near_robot,
    v_lo,
    u_lo,
    count,
    memory_rgb,
    memory_depth,
    tolerance,
    max_average,
    min_observations,
    fill_rgb,
    fill_depth,
    first_row,
    row_stride,
):  # pragma: no cover - compiled
    """On rows first_row, first_row + row_stride, ...: average agreeing measurements into the memory (weight
    1 / (n + 1), n capped), replace disagreeing ones, and keep ``fill_rgb`` (rounded colour) and ``fill_depth`` (depth
    once ``min_observations`` frames agreed, else 0) up to date. Returns (remembered visible pixels, how many of them
    disagreed with the memory before this frame). Arithmetic in float32, the memory's precision (this pass touches
    every pixel it visits of every frame). ``near_robot`` is the (dilated) robot mask of the box from row v_lo and
    column u_lo; the rest of the frame is off the robot."""
    known = 0
    disagree = 0
    one, half = np.float32(1.0), np.float32(0.5)
    height, width = depth.shape
    box_h, box_w = near_robot.shape
    for v in range(first_row, height, row_stride):
        box_row = v - v_lo
        in_box_rows = 0 <= box_row < box_h
        for u in range(width):
            d = depth[v, u]
            if not d > 0 or (in_box_rows and 0 <= u - u_lo < box_w and near_robot[box_row, u - u_lo]):
                continue
            n = np.int64(count[v, u])
            remembered = memory_depth[v, u]
            weight = one
            if n > 0:
                known += 1
                if abs(d - remembered) <= tolerance * d:
                    weight = one / np.float32(min(n, max_average) + 1)
                    n = min(n + 1, 65535)
                else:
                    disagree += 1
                    n = 1
            else:
                n = 1
            count[v, u] = n
            remembered += weight * (d - remembered)
            memory_depth[v, u] = remembered
            fill_depth[v, u] = remembered if n >= min_observations else np.float32(0.0)
            for k in range(3):
                colour = memory_rgb[v, u, k]
                colour += weight * (np.float32(rgb[v, u, k]) - colour)
                memory_rgb[v, u, k] = colour
                fill_rgb[v, u, k] = np.uint8(min(colour + half, np.float32(255.0)))
    return known, disagree
