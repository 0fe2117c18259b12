"""The robot model: a URDF's visual meshes, forward kinematics from joint states, and rendering into any camera."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from .meshes import MeshArrays, visual_mesh
from .raster import rasterise
from .urdf import MOVABLE, RobotModelError, Urdf, load_urdf_file, parse_urdf


@dataclasses.dataclass(frozen=True)
class RobotRender:
    """The robot seen by one camera: ``depth`` (H, W) float32 metres (0 off the robot), ``mask`` (H, W) bool,
    ``part`` (H, W) int32 the material part drawn (one link's triangles of one model colour; -1 off the robot), and
    when colour is asked for (else None) ``rgb`` (H, W, 3) uint8 in the model's colours and ``normal`` (H, W, 3)
    float32 unit surface normals in the camera frame."""

    rgb: np.ndarray | None
    depth: np.ndarray
    mask: np.ndarray
    part: np.ndarray
    normal: np.ndarray | None = None


def _joint_motion(kind: str, axis: np.ndarray, q: float) -> np.ndarray:
    T = np.eye(4)
    if kind == "prismatic":
        T[:3, 3] = axis * q
    elif kind in ("revolute", "continuous"):  # Rodrigues
        x, y, z = axis
        c, s = np.cos(q), np.sin(q)
        C = 1.0 - c
        T[:3, :3] = [
            [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
            [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
            [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
        ]
    return T


class RobotModel:
    """A URDF robot ready to render.

    Build with :meth:`from_urdf_string` (a `/robot_description` message) or :meth:`from_file`. Joint values come as a
    mapping name -> position (radians or metres, as in `/joint_states`); joints not given stay at 0 (see
    :meth:`missing_joints` to check a message covers the robot), mimic joints follow their leader.
    """

    def __init__(self, urdf: Urdf) -> None:
        self.urdf = urdf
        links = [urdf.root] + [j.child for j in urdf.joints]
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
        self.vertices = np.ascontiguousarray(np.concatenate(vertices), np.float32)
        self.vertex_link = np.concatenate(vertex_link)
        self.faces = np.ascontiguousarray(np.concatenate(faces), np.int32)
        self.face_rgb = np.ascontiguousarray(np.concatenate(face_rgb), np.uint8)
        self.face_two_sided = np.concatenate(two_sided)
        # material parts: a link's triangles of one (coarsely quantised) model colour share an appearance
        face_key = np.concatenate([self.vertex_link[self.faces[:, :1]], self.face_rgb // 32], axis=1)
        _, self.face_part = np.unique(face_key, axis=0, return_inverse=True)
        self.face_part = self.face_part.ravel().astype(np.int32)
        self.num_parts = int(self.face_part.max()) + 1
        self.part_link = np.zeros(self.num_parts, np.int32)  # the link of each material part
        self.part_link[self.face_part] = self.vertex_link[self.faces[:, 0]]

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
        poses = {self.urdf.root: np.eye(4)}
        for joint in self.urdf.joints:
            motion = _joint_motion(joint.kind, joint.axis, values.get(joint.name, 0.0))
            poses[joint.child] = poses[joint.parent] @ joint.origin @ motion
        return poses

    def render(
        self,
        positions: Mapping[str, float],
        K: np.ndarray,
        T_cam_root: np.ndarray,
        height: int,
        width: int,
        with_colour: bool = True,
    ) -> RobotRender:
        """Colour, depth and mask of the robot at joint ``positions`` seen by a pinhole camera (K, T_cam_root).

        ``T_cam_root`` maps points from the URDF's root link into the camera's optical frame.
        """
        poses = self.link_transforms(positions)
        T_cam_link = np.stack([T_cam_root @ poses[link] for link in self.links])
        depth, mask, part, rgb, normal = rasterise(
            self.vertices,
            self.vertex_link,
            self.faces,
            self.face_two_sided,
            self.face_rgb,
            self.face_part,
            T_cam_link,
            np.asarray(K, float),
            height,
            width,
            with_colour=with_colour,
        )
        return RobotRender(rgb, depth, mask, part, normal)
