"""The robot model: a URDF's visual meshes, forward kinematics from joint states, and rendering into any camera."""

from __future__ import annotations

import dataclasses
import sys
from typing import Mapping, Sequence

import numba
import numpy as np

from .meshes import MeshArrays, visual_mesh
from .raster import RasterOutputs, RenderMesh, rasterise
from .stages import stage
from .urdf import MOVABLE, RobotModelError, Urdf, load_urdf_file, parse_urdf


@dataclasses.dataclass(frozen=True)
class RobotRender:
    """The robot seen by one camera: ``depth`` (H, W) float32 metres (0 off the robot), ``mask`` (H, W) bool,
    ``part`` (H, W) int32 the material part drawn (one link's triangles of one model colour; -1 off the robot), and
    when colour is asked for (else None) ``rgb`` (H, W, 3) uint8 in the model's colours (None when the model's colours
    are not asked for) and ``normal`` (H, W, 3) float32 unit surface normals in the camera frame. ``box`` (v_lo, v_hi,
    u_lo, u_hi), exclusive ends, holds every robot pixel (per-pixel passes over the robot need not visit the rest of
    the image); None: the whole image.

    A render may be shared by later calls with the same joints and camera (`RobotModel.render`): its arrays are
    read-only. Once a newer render of the same kind replaces it and nothing holds it or its arrays any more, the newer
    one reuses its arrays."""

    rgb: np.ndarray | None
    depth: np.ndarray
    mask: np.ndarray
    part: np.ndarray
    normal: np.ndarray | None = None
    box: tuple[int, int, int, int] | None = None


# the coarse mesh, for the source-view render (mask and depth: the mask is dilated before the scene is cut out, the
# depth compared with a 5 mm + 0.5 % tolerance): a link's vertices within one cell of this size merge into one, so no
# vertex moves more than a cell diagonal. The Panda (103k triangles) keeps 33k; on the data engine's scene at 480x640
# (3 poses, docs/BENCHMARKS.md) its source silhouette IoU against MuJoCo's is 0.996 (full mesh 0.999) and the
# composed view's robot-region PSNR 26.10 dB (full mesh 26.17).
COARSE_CELL_M = 0.006
# a coarse mesh that keeps more than this fraction of the triangles is not worth a second mesh
_COARSE_MIN_SAVING = 0.75


def _merge_duplicate_vertices(
    vertices: np.ndarray, vertex_link: np.ndarray, faces: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One vertex per distinct (link, position): mesh files repeat a vertex per normal or texture coordinate, and
    the rasteriser only needs positions (the same image, a fraction of the projection work)."""
    key = np.concatenate([vertex_link[:, None].astype(np.float32), vertices], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # keep the files' vertex order (memory locality of the faces)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    keep = first[order]
    return vertices[keep], vertex_link[keep], rank[inverse.ravel()][faces].astype(np.int32)


def cluster_vertices(
    vertices: np.ndarray, vertex_link: np.ndarray, faces: np.ndarray, cell_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A coarser mesh by vertex clustering: each link's vertices in one ``cell_m`` cube become their mean; triangles
    that lose a corner that way vanish, repeated ones are dropped. Returns vertices, vertex_link, faces and the index
    of each kept face in ``faces`` (for its colour, part and sidedness). A closed surface stays closed, and a kept
    triangle keeps its winding, so back faces can still be skipped."""
    cells = np.floor(vertices / cell_m).astype(np.int64)
    key = np.concatenate([vertex_link[:, None].astype(np.int64), cells], axis=1)
    _, first, inverse, counts = np.unique(key, axis=0, return_index=True, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    merged = np.zeros((len(counts), 3))
    np.add.at(merged, inverse, vertices)
    merged /= counts[:, None]
    new_faces = inverse[faces]
    kept = np.flatnonzero(
        (new_faces[:, 0] != new_faces[:, 1])
        & (new_faces[:, 1] != new_faces[:, 2])
        & (new_faces[:, 0] != new_faces[:, 2])
    )
    # the same triangle twice (same corners, same winding): rotate each to start at its smallest corner
    rotated = new_faces[kept]
    start = np.argmin(rotated, axis=1)
    rotated = np.stack([rotated[np.arange(len(rotated)), (start + k) % 3] for k in range(3)], axis=1)
    _, unique = np.unique(rotated, axis=0, return_index=True)
    kept = kept[np.sort(unique)]
    return merged.astype(np.float32), vertex_link[first], new_faces[kept].astype(np.int32), kept


_FIXED, _REVOLUTE, _PRISMATIC = 0, 1, 2  # how a joint moves (floating and planar joints are held fixed)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _chain(parent, origin, axis, motion_kind, values, poses):  # pragma: no cover - compiled
    """poses[j + 1] = poses[parent[j]] @ origin[j] @ motion of joint j at values[j] (Rodrigues about ``axis`` for a
    revolute joint, a shift along it for a prismatic one), joints in parent-before-child order; poses[0] is the root
    (identity)."""
    motion = np.empty((4, 4))
    step = np.empty((4, 4))
    for j in range(parent.shape[0]):
        x, y, z, q = axis[j, 0], axis[j, 1], axis[j, 2], values[j]
        motion[:] = 0.0
        for k in range(4):
            motion[k, k] = 1.0
        if motion_kind[j] == _PRISMATIC:
            motion[0, 3], motion[1, 3], motion[2, 3] = x * q, y * q, z * q
        elif motion_kind[j] == _REVOLUTE:
            c, s = np.cos(q), np.sin(q)
            C = 1.0 - c
            motion[0, 0], motion[0, 1], motion[0, 2] = c + x * x * C, x * y * C - z * s, x * z * C + y * s
            motion[1, 0], motion[1, 1], motion[1, 2] = y * x * C + z * s, c + y * y * C, y * z * C - x * s
            motion[2, 0], motion[2, 1], motion[2, 2] = z * x * C - y * s, z * y * C + x * s, c + z * z * C
        P = poses[parent[j]]
        for r in range(4):  # (P @ origin) @ motion, in the order numpy's chain multiplied them
            for k in range(4):
                step[r, k] = P[r, 0] * origin[j, 0, k] + P[r, 1] * origin[j, 1, k] + P[r, 2] * origin[j, 2, k]
                step[r, k] += P[r, 3] * origin[j, 3, k]
        for r in range(4):
            for k in range(4):
                poses[j + 1, r, k] = (
                    step[r, 0] * motion[0, k]
                    + step[r, 1] * motion[1, k]
                    + step[r, 2] * motion[2, k]
                    + step[r, 3] * motion[3, k]
                )


def _unshared_outputs(render: RobotRender) -> RasterOutputs | None:
    """The arrays of ``render`` (writable again) with its box, for `rasterise` to draw the next render into, when
    nothing but the caller's one reference holds the render or any of its arrays (a view or slice of an array holds
    the array: CPython's reference counts see every holder, the hand-eye check's worker thread included); else None.
    """
    # the holders counted when nobody else holds them: the render, the caller's reference, `render` here and
    # getrefcount's argument; an array, the render's field, the `arrays` tuple, `array` here and the argument
    if render.box is None or sys.getrefcount(render) > 3:
        return None
    arrays = (render.depth, render.mask, render.part, render.rgb, render.normal)
    for array in arrays:
        if array is not None and (array.base is not None or sys.getrefcount(array) > 4):
            return None
    for array in arrays:
        if array is not None:
            array.flags.writeable = True
    return render.depth, render.mask, render.part, render.rgb, render.normal, render.box


class RobotModel:
    """A URDF robot ready to render.

    Build with :meth:`from_urdf_string` (a `/robot_description` message) or :meth:`from_file`. Joint values come as a
    mapping name -> position (radians or metres, as in `/joint_states`); joints not given stay at 0 (see
    :meth:`missing_joints` to check a message covers the robot), mimic joints follow their leader.
    """

    def __init__(self, urdf: Urdf) -> None:
        self.urdf = urdf
        links = [urdf.root] + [j.child for j in urdf.joints]
        # the kinematic chain as arrays for the compiled FK (`_chain`): link j + 1 is joint j's child
        self._joint_parent = np.array([links.index(j.parent) for j in urdf.joints], np.int64)
        self._joint_origin = np.array([j.origin for j in urdf.joints], np.float64).reshape(-1, 4, 4)
        self._joint_axis = np.array([j.axis for j in urdf.joints], np.float64).reshape(-1, 3)
        motions = {"revolute": _REVOLUTE, "continuous": _REVOLUTE, "prismatic": _PRISMATIC}
        self._joint_motion = np.array([motions.get(j.kind, _FIXED) for j in urdf.joints], np.int64)
        self._set_meshes(links, [[visual_mesh(v) for v in urdf.visuals[link]] for link in links], urdf.name)

    def _set_meshes(self, links: list[str], meshes: list[list[MeshArrays]], name: str) -> None:
        """Concatenate each link's meshes (in the link's frame) into the arrays the rasteriser draws."""
        self.links = links
        vertices, vertex_link, faces, face_rgb, two_sided = [], [], [], [], []
        offset = 0
        for index, link_meshes in enumerate(meshes):
            for mesh in link_meshes:
                vertices.append(mesh.vertices)
                vertex_link.append(np.full(len(mesh.vertices), index, np.int32))
                faces.append(mesh.faces + offset)
                face_rgb.append(mesh.face_rgb)
                two_sided.append(np.full(len(mesh.faces), mesh.two_sided))
                offset += len(mesh.vertices)
        if not faces:
            raise RobotModelError(f"robot '{name}' has no visual geometry to draw")
        self.vertices, self.vertex_link, self.faces = _merge_duplicate_vertices(
            np.ascontiguousarray(np.concatenate(vertices), np.float32),
            np.concatenate(vertex_link),
            np.ascontiguousarray(np.concatenate(faces), np.int32),
        )
        self.face_rgb = np.ascontiguousarray(np.concatenate(face_rgb), np.uint8)
        self.face_two_sided = np.concatenate(two_sided)
        # material parts: a link's triangles of one (coarsely quantised) model colour share an appearance
        face_key = np.concatenate([self.vertex_link[self.faces[:, :1]], self.face_rgb // 32], axis=1)
        _, self.face_part = np.unique(face_key, axis=0, return_inverse=True)
        self.face_part = self.face_part.ravel().astype(np.int32)
        self.num_parts = int(self.face_part.max()) + 1
        self.part_link = np.zeros(self.num_parts, np.int32)  # the link of each material part
        self.part_link[self.face_part] = self.vertex_link[self.faces[:, 0]]
        full = RenderMesh.build(
            self.vertices, self.vertex_link, self.faces, self.face_two_sided, self.face_rgb, self.face_part
        )
        coarse_vertices, coarse_link, coarse_faces, kept = cluster_vertices(
            self.vertices, self.vertex_link, self.faces, COARSE_CELL_M
        )
        coarse = RenderMesh.build(
            coarse_vertices,
            coarse_link,
            coarse_faces,
            *(np.ascontiguousarray(a[kept]) for a in (self.face_two_sided, self.face_rgb, self.face_part)),
        )
        self._meshes = {False: full, True: coarse if len(kept) <= _COARSE_MIN_SAVING * len(self.faces) else full}
        self._fk: tuple[tuple[float, ...], dict[str, np.ndarray]] | None = None
        self._renders: dict[tuple, tuple[tuple, RobotRender]] = {}  # per kind: (joints and camera, render)

    @classmethod
    def from_urdf_string(cls, text: str, search_paths: Sequence[str] = ()) -> "RobotModel":
        """From URDF XML (a `/robot_description` message): `package://` meshes resolve through the ament index and
        ``search_paths``; relative paths only through ``search_paths``."""
        return cls(parse_urdf(text, None, search_paths))

    @classmethod
    def from_file(cls, path: str, search_paths: Sequence[str] = ()) -> "RobotModel":
        return cls(load_urdf_file(path, search_paths))

    @property
    def root_link(self) -> str:
        return self.urdf.root

    @property
    def joint_names(self) -> list[str]:
        """The joints a joint-state message must give (movable, not mimic)."""
        return self.urdf.movable_joints

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    @property
    def num_coarse_faces(self) -> int:
        """Triangles of the coarse mesh (`render(..., coarse=True)`)."""
        return len(self._meshes[True].faces)

    def missing_joints(self, names: Sequence[str]) -> list[str]:
        """The robot's driven joints absent from ``names``."""
        given = set(names)
        return [name for name in self.joint_names if name not in given]

    def link_transforms(self, positions: Mapping[str, float]) -> dict[str, np.ndarray]:
        """T_root_link (4, 4) of every link for joint ``positions`` (name -> value; extra names are ignored)."""
        values = {}
        for joint in self.urdf.joints:
            if joint.kind in MOVABLE and joint.mimic is None:
                values[joint.name] = float(positions.get(joint.name, 0.0))
        for joint in self.urdf.joints:
            if joint.mimic is not None:
                leader, multiplier, offset = joint.mimic
                values[joint.name] = multiplier * values.get(leader, 0.0) + offset
        poses = np.zeros((len(self.links), 4, 4))
        poses[0] = np.eye(4)
        joint_values = np.array([values.get(joint.name, 0.0) for joint in self.urdf.joints], np.float64)
        _chain(self._joint_parent, self._joint_origin, self._joint_axis, self._joint_motion, joint_values, poses)
        return dict(zip(self.links, poses))

    def _poses(self, joints: tuple[float, ...]) -> dict[str, np.ndarray]:
        """`link_transforms` of the driven joints' values, reused while they do not change (both views of a frame,
        and every frame while the robot rests)."""
        cached = self._fk
        if cached is None or cached[0] != joints:
            cached = self._fk = (joints, self.link_transforms(dict(zip(self.joint_names, joints))))
        return cached[1]

    def render(
        self,
        positions: Mapping[str, float],
        K: np.ndarray,
        T_cam_root: np.ndarray,
        height: int,
        width: int,
        with_colour: bool = True,
        coarse: bool = False,
        model_colours: bool = True,
    ) -> RobotRender:
        """Colour, depth and mask of the robot at joint ``positions`` seen by a pinhole camera (K, T_cam_root).

        ``T_cam_root`` maps points from the URDF's root link into the camera's optical frame. ``coarse`` draws the
        coarse mesh (`COARSE_CELL_M`): a silhouette and depth right to a few millimetres at a fraction of the cost.
        ``model_colours`` False (with ``with_colour``) leaves rgb out: the normals are what a composition that keeps
        a fitted appearance needs. The last render of each kind (joints, camera, size, colour, coarse) is kept: asked
        again, e.g. while the robot rests in front of a fixed camera, it is returned as it is (its arrays are
        read-only). A new render of the kind draws into the arrays of the one it replaces when nothing else holds them
        (`_unshared_outputs`).
        """
        joints = tuple(float(positions.get(name, 0.0)) for name in self.joint_names)
        K = np.asarray(K, float)
        T_cam_root = np.asarray(T_cam_root, float)
        kind = (height, width, with_colour, coarse, model_colours)
        key = (joints, K.tobytes(), T_cam_root.tobytes())
        cached = self._renders.pop(kind, None)
        if cached is not None and cached[0] == key:
            self._renders[kind] = cached
            return cached[1]
        # the render this one replaces lends its arrays when nothing outside holds it or them any more
        into = _unshared_outputs(cached[1]) if cached is not None else None
        del cached
        with stage("fk"):
            poses = self._poses(joints)
            T_cam_link = T_cam_root @ np.stack([poses[link] for link in self.links])
        depth, mask, part, rgb, normal, box = rasterise(
            self._meshes[coarse],
            T_cam_link,
            K,
            height,
            width,
            with_colour=with_colour,
            model_colours=model_colours,
            into=into,
        )
        for array in (depth, mask, part, rgb, normal):
            if array is not None:
                array.flags.writeable = False
        render = RobotRender(rgb, depth, mask, part, normal, box)
        self._renders[kind] = (key, render)
        return render
