"""A z-buffer triangle rasteriser for the robot's meshes (numba, serial, cached on disk).

Any pinhole K (principal point anywhere, fx != fy, skew ignored) and any camera pose, which MuJoCo's cameras do not
offer without rebuilding their frustum. Vertices are moved into the camera per link (one 3x4 transform per link),
projected, and each triangle is rasterised at pixel centres (integer coordinates) with screen-space edge functions;
depth is interpolated perspective-correctly (1/z linear in screen space) and the nearest surface wins. Triangles
with a corner closer than ``near`` are skipped (the robot is in front of the camera), and so are back faces of
meshes whose winding says which side is out (half the work; other meshes are drawn two-sided), first by whole
groups of faces (`RenderMesh`) that surely face away, then face by face. Flat shading: each
pixel gets its triangle's colour times a headlight Lambert term, so surfaces facing the camera are brightest.

Cost (a detailed robot mesh has several triangles per pixel, most between pixel centres): only the box the vertices
project into is rasterised, finished and shaded (one pass); the barycentric weights are stepped along rows and
columns, and each row visits only its span of the triangle (thin triangles fill a fraction of their box).
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

from .stages import stage

# back faces are skipped in groups first: a link's one-sided faces whose normals lie closest to one of this many
# directions (spread evenly over the sphere) form a group; on the Panda at 480x640 the groups wholly facing away hold
# 30-38 % of the triangles (64 directions; 16: 11-22 %, 128: 36-42 % with twice the groups)
_GROUP_DIRECTIONS = 64


def _sphere_directions(count: int) -> np.ndarray:
    """(count, 3) unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    index = np.arange(count) + 0.5
    polar, azimuth = np.arccos(1 - 2 * index / count), np.pi * (1 + 5**0.5) * index
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


@dataclasses.dataclass(frozen=True)
class RenderMesh:
    """Triangles ready to rasterise: vertices (V, 3) float32 in their link's frame, vertex_link (V,) int32 link index
    of each vertex, faces (F, 3) int32, two_sided (F,) bool (draw the face from behind too), face_rgb (F, 3) uint8,
    face_part (F,) int32 material part of each face; derived by :meth:`build`: face_normal (F, 3) float32 unit
    normals in the link's frame (0 for degenerate faces), face_link (F,) int32, and the faces' groups for back-face
    culling (the faces are stored group by group): group_start (G + 1,) int64 first face of each group,
    group_link (G,) int32, and per group a cone holding its normals, group_axis (G, 3) and group_half_angle (G,)
    radians (pi: never culled, e.g. two-sided faces), and a sphere holding its corners, group_centre (G, 3) and
    group_radius (G,), all float64 in the link's frame."""

    vertices: np.ndarray
    vertex_link: np.ndarray
    faces: np.ndarray
    two_sided: np.ndarray
    face_rgb: np.ndarray
    face_part: np.ndarray
    face_normal: np.ndarray
    face_link: np.ndarray
    group_start: np.ndarray
    group_link: np.ndarray
    group_axis: np.ndarray
    group_half_angle: np.ndarray
    group_centre: np.ndarray
    group_radius: np.ndarray

    @classmethod
    def build(
        cls,
        vertices: np.ndarray,
        vertex_link: np.ndarray,
        faces: np.ndarray,
        two_sided: np.ndarray,
        face_rgb: np.ndarray,
        face_part: np.ndarray,
    ) -> "RenderMesh":
        """The mesh with its faces reordered group by group (see the class docstring); the image is the same."""
        corners = vertices.astype(np.float64)[faces]
        normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        length = np.linalg.norm(normal, axis=1, keepdims=True)
        normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
        face_link = vertex_link[faces[:, 0]].astype(np.int64)
        # a link's one-sided faces by nearest direction; each link's other faces form one more group
        cullable = ~np.asarray(two_sided, bool) & (length[:, 0] > 0)
        direction = np.where(cullable, np.argmax(normal @ _sphere_directions(_GROUP_DIRECTIONS).T, axis=1), -1)
        key = face_link * (_GROUP_DIRECTIONS + 1) + direction + 1
        order = np.argsort(key, kind="stable")
        key, corners, normal, cullable = key[order], corners[order], normal[order], cullable[order]
        start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        axis = np.add.reduceat(normal, start)
        axis /= np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-12)
        group = np.repeat(np.arange(len(start)), np.diff(np.r_[start, len(key)]))
        angle = np.arccos(np.clip(np.einsum("ij,ij->i", normal, axis[group]), -1.0, 1.0))
        half_angle = np.where(np.logical_and.reduceat(cullable, start), np.maximum.reduceat(angle, start), np.pi)
        centre = np.add.reduceat(corners.mean(axis=1), start) / np.diff(np.r_[start, len(key)])[:, None]
        radius = np.maximum.reduceat(np.linalg.norm(corners - centre[group][:, None], axis=2).max(axis=1), start)
        return cls(
            vertices,
            vertex_link,
            np.ascontiguousarray(faces[order]),
            np.ascontiguousarray(two_sided[order]),
            np.ascontiguousarray(face_rgb[order]),
            np.ascontiguousarray(face_part[order]),
            normal.astype(np.float32),
            face_link[order].astype(np.int32),
            np.r_[start, len(key)].astype(np.int64),
            face_link[order][start].astype(np.int32),
            axis,
            half_angle,
            centre,
            radius,
        )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _groups_facing(T_cam_link, group_link, axis, half_angle, centre, radius, facing):  # pragma: no cover - compiled
    """facing[g] = False where every face of group g surely faces away from the camera: every normal of its cone
    makes less than 90 degrees with the direction from the camera to every point of its sphere (the cone's half
    angle, plus the axis's angle to the sphere's centre, plus the sphere's angular radius)."""
    for g in range(group_link.shape[0]):
        T = T_cam_link[group_link[g]]
        # the camera's centre in the link's frame: -R^T t
        cam_x = -(T[0, 0] * T[0, 3] + T[1, 0] * T[1, 3] + T[2, 0] * T[2, 3])
        cam_y = -(T[0, 1] * T[0, 3] + T[1, 1] * T[1, 3] + T[2, 1] * T[2, 3])
        cam_z = -(T[0, 2] * T[0, 3] + T[1, 2] * T[1, 3] + T[2, 2] * T[2, 3])
        dx, dy, dz = centre[g, 0] - cam_x, centre[g, 1] - cam_y, centre[g, 2] - cam_z
        distance = np.sqrt(dx * dx + dy * dy + dz * dz)
        if radius[g] >= distance:
            facing[g] = True
            continue
        cos_axis = (axis[g, 0] * dx + axis[g, 1] * dy + axis[g, 2] * dz) / distance
        spread = np.arccos(min(max(cos_axis, -1.0), 1.0)) + half_angle[g] + np.arcsin(radius[g] / distance)
        facing[g] = spread >= 0.5 * np.pi


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _project_vertices(vertices, vertex_link, T_cam_link, fx, fy, cx, cy, near, out):  # pragma: no cover - compiled
    """out (V, 4) = pixel u, v, 1/z and camera-frame z of every vertex; returns the pixel box (u_lo, u_hi, v_lo,
    v_hi), unclipped, of the vertices at least ``near`` ahead: no drawn triangle reaches outside it."""
    u_lo, u_hi, v_lo, v_hi = np.inf, -np.inf, np.inf, -np.inf
    for i in range(vertices.shape[0]):
        T = T_cam_link[vertex_link[i]]
        px, py, pz = vertices[i, 0], vertices[i, 1], vertices[i, 2]
        x = T[0, 0] * px + T[0, 1] * py + T[0, 2] * pz + T[0, 3]
        y = T[1, 0] * px + T[1, 1] * py + T[1, 2] * pz + T[1, 3]
        z = T[2, 0] * px + T[2, 1] * py + T[2, 2] * pz + T[2, 3]
        inv = 1.0 / z if z != 0.0 else 0.0
        u, v = fx * x * inv + cx, fy * y * inv + cy
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = u, v, inv, z
        if z >= near:
            u_lo, u_hi, v_lo, v_hi = min(u_lo, u), max(u_hi, u), min(v_lo, v), max(v_hi, v)
    return u_lo, u_hi, v_lo, v_hi


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _span_where_non_negative(weight, step, t_lo, t_hi):  # pragma: no cover - compiled
    """[t_lo, t_hi] narrowed to the column offsets t where ``weight + step * t >= 0``, and False when a constant
    weight (step 0) is negative on the whole row."""
    if step > 0.0:
        return max(t_lo, -weight / step), t_hi, True
    if step < 0.0:
        return t_lo, min(t_hi, -weight / step), True
    return t_lo, t_hi, not weight < -1e-9


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rasterise(
    projected, faces, two_sided, group_start, group_facing, near, v0, u0, height, width, inv_depth, face_id
):  # pragma: no cover - compiled
    """Fill ``inv_depth`` (0 = empty) and ``face_id`` (-1 = empty) with the nearest triangle of the groups that may
    face the camera: both cover the image rows v0.. and columns u0.. of a ``height`` x ``width`` image (the robot's
    box, not the whole image)."""
    v_end, u_end = v0 + inv_depth.shape[0] - 1, u0 + inv_depth.shape[1] - 1
    for g in range(group_facing.shape[0]):
        if not group_facing[g]:
            continue
        for f in range(group_start[g], group_start[g + 1]):
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            if projected[a, 3] < near or projected[b, 3] < near or projected[c, 3] < near:
                continue
            x0, y0, w0 = projected[a, 0], projected[a, 1], projected[a, 2]
            x1, y1, w1 = projected[b, 0], projected[b, 1], projected[b, 2]
            x2, y2, w2 = projected[c, 0], projected[c, 1], projected[c, 2]
            area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
            # counter-clockwise seen from outside is clockwise in the image (y down): negative area faces the camera
            if abs(area) < 1e-12 or (area > 0 and not two_sided[f]):
                continue
            u_lo = max(int(np.ceil(min(x0, min(x1, x2)))), u0)
            u_hi = min(int(np.floor(max(x0, max(x1, x2)))), u_end)
            if u_lo > u_hi:  # most of a detailed mesh's triangles fall between pixel centres
                continue
            v_lo = max(int(np.ceil(min(y0, min(y1, y2)))), v0)
            v_hi = min(int(np.floor(max(y0, max(y1, y2)))), v_end)
            if v_lo > v_hi:
                continue
            inv_area = 1.0 / area
            # the barycentric weights of corners a and b are affine in the pixel: stepped along rows and columns
            du0, du1 = (y1 - y2) * inv_area, (y2 - y0) * inv_area
            dv0, dv1 = (x2 - x1) * inv_area, (x0 - x2) * inv_area
            du2 = -du0 - du1
            row0 = ((x1 - u_lo) * (y2 - v_lo) - (x2 - u_lo) * (y1 - v_lo)) * inv_area
            row1 = ((x2 - u_lo) * (y0 - v_lo) - (x0 - u_lo) * (y2 - v_lo)) * inv_area
            last = float(u_hi - u_lo)
            for v in range(v_lo, v_hi + 1):
                l0, l1 = row0, row1
                row0 += dv0
                row1 += dv1
                l2 = 1.0 - l0 - l1
                # the row's span: the column offsets where each weight (affine in the offset) is >= 0, widened by a
                # hair so that the exact test below, not the division's rounding, decides the pixels on its ends
                t_lo, t_hi, inside = _span_where_non_negative(l0, du0, 0.0, last)
                t_lo, t_hi, inside1 = _span_where_non_negative(l1, du1, t_lo, t_hi)
                t_lo, t_hi, inside2 = _span_where_non_negative(l2, du2, t_lo, t_hi)
                if not (inside and inside1 and inside2):
                    continue
                first, end = max(int(np.ceil(t_lo - 1e-4)), 0), min(int(np.floor(t_hi + 1e-4)), u_hi - u_lo)
                l0 += du0 * first
                l1 += du1 * first
                for u in range(u_lo + first, u_lo + end + 1):
                    l2 = 1.0 - l0 - l1
                    if l0 >= -1e-9 and l1 >= -1e-9 and l2 >= -1e-9:
                        inv = l0 * w0 + l1 * w1 + l2 * w2
                        if inv > inv_depth[v - v0, u - u0]:
                            inv_depth[v - v0, u - u0] = inv
                            face_id[v - v0, u - u0] = f
                    l0 += du0
                    l1 += du1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _finish(
    inv_depth,
    face_id,
    v0,
    u0,
    face_part,
    depth,
    mask,
    part,
    with_colour,
    model_colours,
    face_normal,
    face_link,
    R_cam_link,
    face_rgb,
    fx,
    fy,
    cx,
    cy,
    ambient,
    rgb,
    normal,
):  # pragma: no cover - compiled
    """One pass over the drawn pixels (the rest of the image is already empty: depth 0, mask False, part -1, rgb and
    normal 0): depth (metres), mask, material part, and ``with_colour`` normal (H, W, 3) = the face's unit normal in
    the camera frame, turned towards the camera (face normals are in the link's frame, R_cam_link (L, 3, 3) turns
    them) and, with ``model_colours`` too, rgb (H, W, 3) = face colour * (ambient + (1 - ambient) * |cos(normal,
    view ray)|). ``face_id``
    covers the rows v0.. and columns u0.. of the image. Returns the box (v_lo, v_hi, u_lo, u_hi), exclusive ends, of
    the drawn pixels."""
    v_lo, v_hi, u_lo, u_hi = depth.shape[0], 0, depth.shape[1], 0
    for i in range(face_id.shape[0]):
        v = v0 + i
        ray_y = (v - cy) / fy
        for j in range(face_id.shape[1]):
            f = face_id[i, j]
            if f < 0:
                continue
            u = u0 + j
            depth[v, u], mask[v, u], part[v, u] = 1.0 / inv_depth[i, j], True, face_part[f]
            v_lo, v_hi, u_lo, u_hi = min(v_lo, v), max(v_hi, v + 1), min(u_lo, u), max(u_hi, u + 1)
            if not with_colour:
                continue
            ray_x = (u - cx) / fx  # the pixel's view ray (ray_x, ray_y, 1)
            R = R_cam_link[face_link[f]]
            a, b, c = face_normal[f, 0], face_normal[f, 1], face_normal[f, 2]
            nx = R[0, 0] * a + R[0, 1] * b + R[0, 2] * c
            ny = R[1, 0] * a + R[1, 1] * b + R[1, 2] * c
            nz = R[2, 0] * a + R[2, 1] * b + R[2, 2] * c
            dot = nx * ray_x + ny * ray_y + nz
            towards = -1.0 if dot > 0.0 else 1.0
            normal[v, u, 0], normal[v, u, 1], normal[v, u, 2] = towards * nx, towards * ny, towards * nz
            if not model_colours:
                continue
            gain = ambient + (1.0 - ambient) * abs(dot) / np.sqrt(ray_x * ray_x + ray_y * ray_y + 1.0)
            for k in range(3):
                rgb[v, u, k] = np.uint8(min(255.0, face_rgb[f, k] * gain + 0.5))
    return v_lo, max(v_hi, v_lo), u_lo, max(u_hi, u_lo)


def _minus_ones(shape: tuple[int, ...]) -> np.ndarray:
    """np.full(shape, -1, np.int32) by memset (every byte of -1 is 0xff): several times faster than np.full's
    element loop, and these fills are a visible share of a render."""
    out = np.empty(shape, np.int32)
    out.view(np.uint8).fill(0xFF)
    return out


# depth (H, W) float32, mask (H, W) bool, part (H, W) int32, rgb (H, W, 3) uint8 or None, normal (H, W, 3) float32 or
# None, and the box (v_lo, v_hi, u_lo, u_hi) of the drawn pixels: what `rasterise` returns
RasterOutputs = tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, tuple[int, int, int, int]
]
# the colour outputs `_finish` gets for a render without colour (never written)
_NO_COLOUR = (np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0, 3), np.float32))


def rasterise(
    mesh: RenderMesh,
    T_cam_link: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    near: float = 0.01,
    ambient: float = 0.35,
    with_colour: bool = True,
    model_colours: bool = True,
    into: RasterOutputs | None = None,
) -> RasterOutputs:
    """Render triangles into a pinhole camera.

    Only the box the robot's vertices project into is rasterised and shaded (the robot covers a fraction of the
    image); the rest of the outputs is filled as empty.

    Args:
        mesh: the triangles.
        T_cam_link: (L, 4, 4) camera-from-link transforms.
        K: (3, 3) intrinsics.
        model_colours: with ``with_colour``, also the model's shaded colours (rgb); False: the normals only.
        into: the outputs of an earlier call of the same size, ``with_colour`` and ``model_colours`` to draw into
            instead of new arrays (their drawn pixels are cleared first, by their box): fresh full-size arrays cost
            more than drawing.
    Returns:
        depth (H, W) float32 metres (0 = no robot), mask (H, W) bool, part (H, W) int32 (-1 = no robot), when
        ``with_colour`` (else None) rgb (H, W, 3) uint8 (None without ``model_colours``) and unit normals (H, W, 3)
        float32 in the camera frame, facing it; and the box (v_lo, v_hi, u_lo, u_hi) (exclusive ends) holding every
        drawn pixel.
    """
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    vertices, faces = mesh.vertices, mesh.faces
    projected = np.empty((len(vertices), 4), np.float64)
    T_cam_3x4 = np.ascontiguousarray(T_cam_link[:, :3, :], np.float64)
    with stage("project vertices"):
        box_u_lo, box_u_hi, box_v_lo, box_v_hi = _project_vertices(
            vertices,
            mesh.vertex_link,
            T_cam_3x4,
            fx,
            fy,
            cx,
            cy,
            near,
            projected,
        )
    with stage("rasterise"):
        # the pixel centres inside the vertices' box (none when no vertex is ahead of the camera)
        v0, u0 = max(int(np.ceil(min(box_v_lo, height))), 0), max(int(np.ceil(min(box_u_lo, width))), 0)
        v1, u1 = min(int(np.floor(max(box_v_hi, -1))) + 1, height), min(int(np.floor(max(box_u_hi, -1))) + 1, width)
        box_h, box_w = max(v1 - v0, 0), max(u1 - u0, 0)
        inv_depth = np.zeros((box_h, box_w), np.float64)
        face_id = _minus_ones((box_h, box_w))
        if box_h and box_w:
            facing = np.empty(len(mesh.group_link), bool)
            _groups_facing(
                T_cam_3x4,
                mesh.group_link,
                mesh.group_axis,
                mesh.group_half_angle,
                mesh.group_centre,
                mesh.group_radius,
                facing,
            )
            _rasterise(
                projected,
                faces,
                mesh.two_sided,
                mesh.group_start,
                facing,
                float(near),
                v0,
                u0,
                height,
                width,
                inv_depth,
                face_id,
            )
    with stage("finish"):
        if into is None:
            depth, mask, part = (
                np.zeros((height, width), np.float32),
                np.zeros((height, width), bool),
                _minus_ones((height, width)),
            )
            normal = np.zeros((height, width, 3), np.float32) if with_colour else None
            rgb = np.zeros((height, width, 3), np.uint8) if with_colour and model_colours else None
        else:
            depth, mask, part, rgb, normal, (old_v_lo, old_v_hi, old_u_lo, old_u_hi) = into
            if (
                depth.shape != (height, width)
                or (normal is not None) != with_colour
                or (rgb is not None) != (with_colour and model_colours)
            ):
                raise ValueError("rasterise: `into` holds outputs of another size or colour setting")
            drawn = (slice(old_v_lo, old_v_hi), slice(old_u_lo, old_u_hi))
            depth[drawn], mask[drawn], part[drawn] = 0.0, False, -1
            if normal is not None:
                normal[drawn] = 0.0
            if rgb is not None:
                rgb[drawn] = 0
        box = (0, 0, 0, 0)
        if box_h and box_w:
            box = _finish(
                inv_depth,
                face_id,
                v0,
                u0,
                mesh.face_part,
                depth,
                mask,
                part,
                with_colour,
                rgb is not None,
                mesh.face_normal,
                mesh.face_link,
                np.ascontiguousarray(T_cam_link[:, :3, :3], np.float64),
                mesh.face_rgb,
                fx,
                fy,
                cx,
                cy,
                float(ambient),
                _NO_COLOUR[0] if rgb is None else rgb,
                _NO_COLOUR[1] if normal is None else normal,
            )
    return depth, mask, part, rgb, normal, box
