"""Visual meshes of a URDF as plain arrays: vertices in the link frame, triangles, a colour per triangle.

Mesh files load through trimesh (OBJ with every object and material of the file, STL, and COLLADA .dae when
pycollada is installed), so what is drawn is the full visual mesh: MuJoCo 4.0's OBJ decoder keeps only the first
object of a multi-object OBJ (pybullet_data's franka_panda visual link5.obj: 250 of 18,327 faces).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .urdf import RobotModelError, Visual

_DEFAULT_RGB = (0.7, 0.7, 0.7)


@dataclasses.dataclass(frozen=True)
class MeshArrays:
    """A triangle mesh: ``vertices`` (V, 3) float32, ``faces`` (F, 3) int32, ``face_rgb`` (F, 3) uint8;
    ``two_sided``: its faces must be drawn from both sides (their winding does not say which side is out)."""

    vertices: np.ndarray
    faces: np.ndarray
    face_rgb: np.ndarray
    two_sided: bool = True


def obj_object_count(path: str) -> int:
    """How many objects (`o`/`g` sections with faces) an OBJ file holds."""
    sections, faces_in_section = 0, False
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("o ", "g ")):
                faces_in_section = False
            elif line.startswith("f ") and not faces_in_section:
                sections, faces_in_section = sections + 1, True
    return sections


@functools.lru_cache(maxsize=256)
def load_mesh_file(path: str) -> MeshArrays:
    """Every triangle of a mesh file (all objects of an OBJ) with a colour per triangle from its materials."""
    import trimesh  # only where a robot model is used

    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as error:  # trimesh raises many types for broken files; all mean "this file is unusable"
        raise RobotModelError(f"cannot load mesh '{path}': {error}") from error
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise RobotModelError(f"mesh '{path}' has no triangles")
    faces = np.asarray(mesh.faces, np.int32)
    try:
        # only texture visuals convert; the AttributeError of the others is the "no usable colour" case below
        vertex_rgb = np.asarray(mesh.visual.to_color().vertex_colors, np.float32)[:, :3]  # type: ignore[union-attr]
        face_rgb = vertex_rgb[faces].mean(axis=1)
    except (AttributeError, ValueError, IndexError, TypeError):  # no usable colour in the file: URDF colour or grey
        face_rgb = np.full((len(faces), 3), 255 * np.asarray(_DEFAULT_RGB), np.float32)
    return MeshArrays(
        np.asarray(mesh.vertices, np.float32),
        faces,
        face_rgb.round().astype(np.uint8),
        two_sided=not winding_points_out(mesh),
    )


def winding_points_out(mesh) -> bool:
    """Whether every face is wound counter-clockwise seen from outside (consistent winding, positive volume): then
    back faces can be skipped, which halves the rasteriser's work (a robot's visual meshes are mostly closed)."""
    import trimesh

    merged = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)  # shared edges need merged vertices
    return bool(merged.is_winding_consistent and merged.volume > 0)


def _primitive(visual: Visual):
    import trimesh

    if visual.kind == "box":
        return trimesh.creation.box(extents=visual.size)
    if visual.kind == "cylinder":
        return trimesh.creation.cylinder(radius=visual.size[0], height=visual.size[1], sections=24)
    return trimesh.creation.icosphere(subdivisions=2, radius=visual.size[0])


def visual_mesh(visual: Visual) -> MeshArrays:
    """The mesh of one URDF visual in its link's frame (origin and scale applied; the URDF colour, when given,
    replaces the file's)."""
    if visual.kind == "mesh":
        base = load_mesh_file(visual.mesh_path)
        vertices, faces, face_rgb = base.vertices * np.asarray(visual.scale, np.float32), base.faces, base.face_rgb
        two_sided = base.two_sided
        if visual.rgba is not None and _is_plain(base.face_rgb):
            face_rgb = np.broadcast_to(_to_uint8(visual.rgba), face_rgb.shape)
        if np.prod(visual.scale) < 0:  # a mirroring scale turns the winding inside out
            faces = faces[:, ::-1]
    else:
        mesh = _primitive(visual)
        vertices, faces = np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32)
        face_rgb = np.broadcast_to(_to_uint8(visual.rgba or _DEFAULT_RGB), (len(faces), 3))
        two_sided = False
    vertices = vertices @ visual.origin[:3, :3].T.astype(np.float32) + visual.origin[:3, 3].astype(np.float32)
    return MeshArrays(
        vertices.astype(np.float32),
        np.ascontiguousarray(faces, np.int32),
        np.ascontiguousarray(face_rgb, np.uint8),
        two_sided,
    )


def _to_uint8(rgba) -> np.ndarray:
    return (255 * np.clip(np.asarray(rgba, float)[:3], 0, 1)).round().astype(np.uint8)


def _is_plain(face_rgb: np.ndarray) -> bool:
    """A mesh whose file carries no colour of its own (one colour everywhere: trimesh's default or a single Kd)."""
    return bool(np.all(face_rgb == face_rgb[0]))
