"""A z-buffer triangle rasteriser for the robot's meshes (numba, serial, cached on disk).

Any pinhole K (principal point anywhere, fx != fy, skew ignored) and any camera pose, which MuJoCo's cameras do not
offer without rebuilding their frustum. Vertices are moved into the camera per link (one 3x4 transform per link),
projected, and each triangle is rasterised at pixel centres (integer coordinates) with screen-space edge functions;
depth is interpolated perspective-correctly (1/z linear in screen space) and the nearest surface wins. Triangles
with a corner closer than ``near`` are skipped (the robot is in front of the camera), and so are back faces of
meshes whose winding says which side is out (half the work; other meshes are drawn two-sided). Flat shading: each
pixel gets its triangle's colour times a headlight Lambert term, so surfaces facing the camera are brightest.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _project_vertices(vertices, vertex_link, T_cam_link, fx, fy, cx, cy, out):  # pragma: no cover - compiled
    """out (V, 6) = camera-frame x, y, z and pixel u, v, 1/z of every vertex."""
    for i in range(vertices.shape[0]):
        T = T_cam_link[vertex_link[i]]
        px, py, pz = vertices[i, 0], vertices[i, 1], vertices[i, 2]
        x = T[0, 0] * px + T[0, 1] * py + T[0, 2] * pz + T[0, 3]
        y = T[1, 0] * px + T[1, 1] * py + T[1, 2] * pz + T[1, 3]
        z = T[2, 0] * px + T[2, 1] * py + T[2, 2] * pz + T[2, 3]
        out[i, 0], out[i, 1], out[i, 2] = x, y, z
        inv = 1.0 / z if z != 0.0 else 0.0
        out[i, 3], out[i, 4], out[i, 5] = fx * x * inv + cx, fy * y * inv + cy, inv


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rasterise(projected, faces, two_sided, near, inv_depth, face_id):  # pragma: no cover - compiled
    """Fill ``inv_depth`` (H, W) (0 = empty) and ``face_id`` (H, W) (-1 = empty) with the nearest triangle."""
    height, width = inv_depth.shape
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        if projected[a, 2] < near or projected[b, 2] < near or projected[c, 2] < near:
            continue
        x0, y0, w0 = projected[a, 3], projected[a, 4], projected[a, 5]
        x1, y1, w1 = projected[b, 3], projected[b, 4], projected[b, 5]
        x2, y2, w2 = projected[c, 3], projected[c, 4], projected[c, 5]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        # counter-clockwise seen from outside is clockwise in the image (y down): negative area faces the camera
        if abs(area) < 1e-12 or (area > 0 and not two_sided[f]):
            continue
        u_lo = max(int(np.ceil(min(x0, min(x1, x2)))), 0)
        u_hi = min(int(np.floor(max(x0, max(x1, x2)))), width - 1)
        v_lo = max(int(np.ceil(min(y0, min(y1, y2)))), 0)
        v_hi = min(int(np.floor(max(y0, max(y1, y2)))), height - 1)
        if u_lo > u_hi or v_lo > v_hi:
            continue
        inv_area = 1.0 / area
        for v in range(v_lo, v_hi + 1):
            for u in range(u_lo, u_hi + 1):
                # barycentric weights of corners a, b, c (signed by the winding, normalised by the area)
                l0 = ((x1 - u) * (y2 - v) - (x2 - u) * (y1 - v)) * inv_area
                l1 = ((x2 - u) * (y0 - v) - (x0 - u) * (y2 - v)) * inv_area
                l2 = 1.0 - l0 - l1
                if l0 < -1e-9 or l1 < -1e-9 or l2 < -1e-9:
                    continue
                inv = l0 * w0 + l1 * w1 + l2 * w2
                if inv > inv_depth[v, u]:
                    inv_depth[v, u] = inv
                    face_id[v, u] = f


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _shade(face_id, projected, faces, face_rgb, ambient, rgb, normal):  # pragma: no cover - compiled
    """rgb (H, W, 3) = face colour * (ambient + (1 - ambient) * |cos(normal, view ray)|) where a face was drawn;
    normal (H, W, 3) = the face's unit normal in the camera frame, turned towards the camera."""
    height, width = face_id.shape
    for v in range(height):
        for u in range(width):
            f = face_id[v, u]
            if f < 0:
                continue
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            e1x, e1y, e1z = (
                projected[b, 0] - projected[a, 0],
                projected[b, 1] - projected[a, 1],
                projected[b, 2] - projected[a, 2],
            )
            e2x, e2y, e2z = (
                projected[c, 0] - projected[a, 0],
                projected[c, 1] - projected[a, 1],
                projected[c, 2] - projected[a, 2],
            )
            nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
            # view ray towards the face centre
            rx = projected[a, 0] + projected[b, 0] + projected[c, 0]
            ry = projected[a, 1] + projected[b, 1] + projected[c, 1]
            rz = projected[a, 2] + projected[b, 2] + projected[c, 2]
            length = np.sqrt(nx * nx + ny * ny + nz * nz)
            norm = length * np.sqrt(rx * rx + ry * ry + rz * rz)
            dot = nx * rx + ny * ry + nz * rz
            cosine = abs(dot) / norm if norm > 0.0 else 1.0
            gain = ambient + (1.0 - ambient) * cosine
            towards = -1.0 if dot > 0.0 else 1.0
            if length > 0.0:
                normal[v, u, 0] = towards * nx / length
                normal[v, u, 1] = towards * ny / length
                normal[v, u, 2] = towards * nz / length
            for k in range(3):
                rgb[v, u, k] = np.uint8(min(255.0, face_rgb[f, k] * gain + 0.5))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _finish(inv_depth, face_id, face_part, depth, mask, part):  # pragma: no cover - compiled
    """depth (metres, 0 empty), mask and material part (-1 empty) from the z-buffer."""
    height, width = inv_depth.shape
    for v in range(height):
        for u in range(width):
            f = face_id[v, u]
            if f < 0:
                depth[v, u], mask[v, u], part[v, u] = 0.0, False, -1
            else:
                depth[v, u], mask[v, u], part[v, u] = 1.0 / inv_depth[v, u], True, face_part[f]


def rasterise(
    vertices: np.ndarray,
    vertex_link: np.ndarray,
    faces: np.ndarray,
    face_two_sided: np.ndarray,
    face_rgb: np.ndarray,
    face_part: np.ndarray,
    T_cam_link: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    near: float = 0.01,
    ambient: float = 0.35,
    with_colour: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Render triangles into a pinhole camera.

    Args:
        vertices: (V, 3) float32 in their link's frame; vertex_link: (V,) int32 link index of each vertex.
        faces: (F, 3) int32; face_two_sided: (F,) bool, draw the face from behind too; face_rgb: (F, 3) uint8;
        face_part: (F,) int32 material part of each face.
        T_cam_link: (L, 4, 4) camera-from-link transforms.
        K: (3, 3) intrinsics.
    Returns:
        depth (H, W) float32 metres (0 = no robot), mask (H, W) bool, part (H, W) int32 (-1 = no robot), and when
        ``with_colour`` (else None) rgb (H, W, 3) uint8 and unit normals (H, W, 3) float32 in the camera frame,
        facing it.
    """
    projected = np.empty((len(vertices), 6), np.float64)
    _project_vertices(
        vertices,
        vertex_link,
        np.ascontiguousarray(T_cam_link[:, :3, :], np.float64),
        float(K[0, 0]),
        float(K[1, 1]),
        float(K[0, 2]),
        float(K[1, 2]),
        projected,
    )
    inv_depth = np.zeros((height, width), np.float64)
    face_id = np.full((height, width), -1, np.int32)
    _rasterise(projected, faces, face_two_sided, float(near), inv_depth, face_id)
    depth, mask, part = np.empty((height, width), np.float32), np.empty((height, width), bool), np.empty_like(face_id)
    _finish(inv_depth, face_id, face_part, depth, mask, part)
    rgb = normal = None
    if with_colour:
        rgb = np.zeros((height, width, 3), np.uint8)
        normal = np.zeros((height, width, 3), np.float32)
        _shade(face_id, projected, faces, face_rgb, float(ambient), rgb, normal)
    return depth, mask, part, rgb, normal
