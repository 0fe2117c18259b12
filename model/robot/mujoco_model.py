"""A robot model from a compiled MuJoCo model: MJCF robots (no URDF) and the data engine's scaled robots.

The data engine composes its robots (URDF and MJCF, scaled 0.85-1.15) into MuJoCo scenes; this model draws the robot
bodies of such a scene with the project's rasteriser, its forward kinematics done by MuJoCo itself, so a robot
without a URDF (the held-out MJCF morphologies) and the exact simulated size both work. Appearance comes from geom or
material colours (textures are not read: the robot layer takes colour from the source view anyway).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .meshes import MeshArrays, winding_points_out
from .model import RobotModel
from .urdf import RobotModelError


def _quaternion_matrix(wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = wxyz / np.linalg.norm(wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _geom_mesh(model, geom: int) -> MeshArrays | None:
    """The triangles of one geom in its body's frame, or None for a geom type that is not drawn (planes, ...)."""
    import mujoco
    import trimesh

    kind, size = int(model.geom_type[geom]), model.geom_size[geom]
    two_sided = False
    if kind == mujoco.mjtGeom.mjGEOM_MESH:
        mesh_id = model.geom_dataid[geom]
        start, count = model.mesh_vertadr[mesh_id], model.mesh_vertnum[mesh_id]
        vertices = model.mesh_vert[start : start + count].astype(np.float64)
        first, num_faces = model.mesh_faceadr[mesh_id], model.mesh_facenum[mesh_id]
        faces = model.mesh_face[first : first + num_faces].astype(np.int32)
        two_sided = not winding_points_out(trimesh.Trimesh(vertices, faces, process=False))
    elif kind == mujoco.mjtGeom.mjGEOM_BOX:
        shape = trimesh.creation.box(extents=2 * size)
    elif kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        shape = trimesh.creation.icosphere(subdivisions=2, radius=size[0])
    elif kind == mujoco.mjtGeom.mjGEOM_CYLINDER:
        shape = trimesh.creation.cylinder(radius=size[0], height=2 * size[1], sections=24)
    elif kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
        shape = trimesh.creation.capsule(height=2 * size[1], radius=size[0], count=[16, 16])
    elif kind == mujoco.mjtGeom.mjGEOM_ELLIPSOID:
        shape = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
        shape.vertices = shape.vertices * size
    else:
        return None
    if kind != mujoco.mjtGeom.mjGEOM_MESH:
        vertices, faces = np.asarray(shape.vertices, np.float64), np.asarray(shape.faces, np.int32)
    vertices = vertices @ _quaternion_matrix(model.geom_quat[geom]).T + model.geom_pos[geom]
    material = model.geom_matid[geom]
    rgba = model.mat_rgba[material] if material >= 0 else model.geom_rgba[geom]
    rgb = (255 * np.clip(rgba[:3], 0, 1)).round().astype(np.uint8)
    return MeshArrays(vertices.astype(np.float32), faces, np.tile(rgb, (len(faces), 1)), two_sided)


class MujocoRobotModel(RobotModel):
    """The bodies whose names start with ``prefix`` in a compiled MjModel, as a renderable robot.

    Links are those bodies (names without the prefix), the root link the first of them; joints their hinge and slide
    joints. Only geoms in ``visible_groups`` are drawn (the data engine keeps collision shapes in group 3).
    """

    def __init__(self, model, prefix: str = "", visible_groups: Sequence[int] = (0, 1, 2)) -> None:
        import mujoco

        self._model, self._data = model, mujoco.MjData(model)
        self._prefix = prefix
        bodies = [b for b in range(1, model.nbody) if model.body(b).name.startswith(prefix)]
        if not bodies:
            raise RobotModelError(f"the MuJoCo model has no body named '{prefix}...'")
        self._bodies = bodies
        meshes: list[list[MeshArrays]] = [[] for _ in bodies]
        index = {body: i for i, body in enumerate(bodies)}
        for geom in range(model.ngeom):
            body = int(model.geom_bodyid[geom])
            if body in index and int(model.geom_group[geom]) in visible_groups:
                mesh = _geom_mesh(model, geom)
                if mesh is not None:
                    meshes[index[body]].append(mesh)
        driven = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
        self._joints = {
            model.joint(j).name[len(prefix) :]: int(model.jnt_qposadr[j])
            for j in range(model.njnt)
            if int(model.jnt_bodyid[j]) in index and int(model.jnt_type[j]) in driven
        }
        self._set_meshes([model.body(b).name[len(prefix) :] for b in bodies], meshes, prefix or "robot")

    @property
    def root_link(self) -> str:
        return self.links[0]

    @property
    def joint_names(self) -> list[str]:
        return list(self._joints)

    def link_transforms(self, positions: Mapping[str, float]) -> dict[str, np.ndarray]:
        """T_root_link of every link, MuJoCo's kinematics at joint ``positions`` (joints not given stay at 0)."""
        import mujoco

        data = self._data
        for name, address in self._joints.items():
            data.qpos[address] = float(positions.get(name, 0.0))
        mujoco.mj_kinematics(self._model, data)
        world = np.zeros((len(self._bodies), 4, 4))
        world[:, 3, 3] = 1.0
        world[:, :3, :3] = data.xmat[self._bodies].reshape(-1, 3, 3)
        world[:, :3, 3] = data.xpos[self._bodies]
        root_inverse = np.linalg.inv(world[0])
        return {link: root_inverse @ T for link, T in zip(self.links, world)}
