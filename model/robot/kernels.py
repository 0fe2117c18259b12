"""Compiled per-pixel passes of the robot layer (numba, serial, cached on disk): one pass per step instead of a
dozen full-image numpy temporaries. The numpy-level meaning of each is in `model.robot.compose` and
`model.robot.scene_memory`."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def cut_scene(
    rgb, depth, cut, robot_depth, memory_rgb, memory_depth, use_memory, out_rgb, out_depth
):  # pragma: no cover - compiled
    """out = the source without the ``cut`` pixels (depth 0), completed from memory behind the rendered robot;
    returns how many pixels keep a depth."""
    valid = 0
    height, width = depth.shape
    for v in range(height):
        for u in range(width):
            take_memory = False
            if cut[v, u]:
                if (
                    use_memory
                    and memory_depth[v, u] > 0
                    and (robot_depth[v, u] == 0 or memory_depth[v, u] > robot_depth[v, u])
                ):
                    take_memory = True
                else:
                    out_depth[v, u] = 0.0
                    for k in range(3):
                        out_rgb[v, u, k] = rgb[v, u, k]
                    continue
            if take_memory:
                out_depth[v, u] = memory_depth[v, u]
                for k in range(3):
                    out_rgb[v, u, k] = memory_rgb[v, u, k]
            else:
                out_depth[v, u] = depth[v, u]
                for k in range(3):
                    out_rgb[v, u, k] = rgb[v, u, k]
            if out_depth[v, u] > 0:
                valid += 1
    return valid


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
    seen,
    colour,
    normal_src,
):  # pragma: no cover - compiled
    """For every virtual robot pixel: its surface point in the source camera; ``seen`` where the source saw it
    (inside the eroded source silhouette, model depth and sensor depth agree, facing the source), with the
    bilinear source ``colour``; ``normal_src`` its normal in the source frame."""
    height, width = dst_depth.shape
    src_height, src_width = src_depth.shape
    R, t = T_src_dst[:3, :3], T_src_dst[:3, 3]
    for v in range(height):
        for u in range(width):
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
def _accumulate(gram, rhs, g, num_groups, normal, colour):  # pragma: no cover - compiled
    gram[g, g] += 1.0
    for a in range(3):
        gram[g, num_groups + a] += normal[a]
        gram[num_groups + a, g] += normal[a]
        for b in range(3):
            gram[num_groups + a, num_groups + b] += normal[a] * normal[b]
        for k in range(3):
            rhs[num_groups + a, k] += normal[a] * colour[k]
    for k in range(3):
        rhs[g, k] += colour[k]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def accumulate_appearance(
    seen, colour, normal_src, part, part_link, gram_part, rhs_part, gram_link, rhs_link, gram_robot, rhs_robot
):  # pragma: no cover - compiled
    """Normal equations of colour ~ base[group] + normal @ slope over the seen pixels, for three groupings at once:
    material part, link, whole robot. gram (G+3, G+3), rhs (G+3, 3): columns 0..G-1 one-hot groups, then the normal."""
    num_parts, num_links = gram_part.shape[0] - 3, gram_link.shape[0] - 3
    height, width = seen.shape
    for v in range(height):
        for u in range(width):
            if not seen[v, u]:
                continue
            p = part[v, u]
            _accumulate(gram_part, rhs_part, p, num_parts, normal_src[v, u], colour[v, u])
            _accumulate(gram_link, rhs_link, part_link[p], num_links, normal_src[v, u], colour[v, u])
            _accumulate(gram_robot, rhs_robot, 0, 1, normal_src[v, u], colour[v, u])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def merge(
    robot_mask,
    robot_depth,
    robot_rgb_model,
    seen,
    colour,
    normal_src,
    part,
    part_link,
    bases,
    slopes,
    observed,
    scene_rgb,
    scene_depth,
    scene_mask,
    scene_coverage,
    z_tolerance,
    out_rgb,
    out_depth,
    out_mask,
    out_coverage,
    out_robot,
):  # pragma: no cover - compiled
    """Z-test of the robot against the warped scene; robot colour: the source's where seen, else the first fitted
    appearance level (part, link, whole robot) that observed this pixel's group, else the model colour."""
    height, width = robot_mask.shape
    for v in range(height):
        for u in range(width):
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
            if seen[v, u]:
                for k in range(3):
                    out_rgb[v, u, k] = np.uint8(min(max(colour[v, u, k] + 0.5, 0.0), 255.0))
                continue
            p = part[v, u]
            level, g = -1, 0
            if observed[0, p]:
                level, g = 0, p
            elif observed[1, part_link[p]]:
                level, g = 1, part_link[p]
            elif observed[2, 0]:
                level, g = 2, 0
            for k in range(3):
                if level < 0:
                    value = np.float64(robot_rgb_model[v, u, k])
                else:
                    value = bases[level, g, k]
                    for a in range(3):
                        value += normal_src[v, u, a] * slopes[level, a, k]
                out_rgb[v, u, k] = np.uint8(min(max(value + 0.5, 0.0), 255.0))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def memory_disagreement(depth, robot, count, memory_depth, tolerance):  # pragma: no cover - compiled
    """(remembered visible pixels, how many of them disagree with the memory)."""
    known = 0
    disagree = 0
    height, width = depth.shape
    for v in range(height):
        for u in range(width):
            d = depth[v, u]
            if robot[v, u] or not d > 0 or count[v, u] == 0:
                continue
            known += 1
            if abs(d - memory_depth[v, u]) > tolerance * d:
                disagree += 1
    return known, disagree


@numba.njit(cache=True, nogil=True, error_model="numpy")
def memory_update(
    rgb, depth, robot, count, memory_rgb, memory_depth, tolerance, max_average
):  # pragma: no cover - compiled
    """Average agreeing measurements into the memory (weight 1 / (n + 1), n capped), replace disagreeing ones."""
    height, width = depth.shape
    for v in range(height):
        for u in range(width):
            d = depth[v, u]
            if robot[v, u] or not d > 0:
                continue
            n = count[v, u]
            if n > 0 and abs(d - memory_depth[v, u]) <= tolerance * d:
                weight = 1.0 / (min(n, max_average) + 1.0)
                if n < 65535:
                    count[v, u] = n + 1
            else:
                weight = 1.0
                count[v, u] = 1
            memory_depth[v, u] += weight * (d - memory_depth[v, u])
            for k in range(3):
                memory_rgb[v, u, k] += weight * (rgb[v, u, k] - memory_rgb[v, u, k])
