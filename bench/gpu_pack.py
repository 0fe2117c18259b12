"""Pack what a lent GPU machine lacks for bench/gpu_check.py and offline_training/recipes/gpu_train.py into .gpu/.

    python bench/gpu_pack.py                 (run on a development machine with the project's venv, before the call)
    python bench/gpu_pack.py --check         (only report what would travel and whether it fits)

The device (docs/GPU.md) has CUDA PyTorch on Python 3.12 and many packages, no internet, and takes at most 64 MiB
of working tree per call (tracked files, untracked files git does not ignore, and the carried paths). Into .gpu/
(listed in .git/info/exclude, named in the call's `carry`) this writes:

    .gpu/wheels/      the cp312 manylinux wheels of what the device lacks (WHEELS: diffusers and MuJoCo for EGL
                      rendering; mujoco-studio, its viewer, is not needed), fetched with `pip download`
    .gpu/gl/          the GL loader .debs the device README says to unpack there (libEGL through glvnd)
    .gpu/assets.tar.xz  robot meshes and a few surface textures, paths relative to site-packages: the files that
                      loading and rendering each robot actually opens (traced with strace), so no whole robot wheel
                      travels; robots are added smallest first until --assets-mib is reached

and prints the size of everything that travels against the 64 MiB limit (exit 1 when over). On the device:
`tar -xJf .gpu/assets.tar.xz -C /tmp/assets` and PYTHONPATH=/tmp/assets make the data engine find the assets as
it finds them in installed wheels (offline_training/sim/assets.py locates package directories, it imports nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / ".gpu"
LIMIT = 64 * 2**20
# exact pins of what the device image lacks (its list: the device tool's KINDS.md); --no-deps: each dependency
# missing there is named here too (diffusers needs importlib_metadata; its other needs are on the device)
WHEELS = [
    "diffusers==0.42.1",
    "importlib_metadata==10.2.0",
    "mujoco==4.0.0",
    "mujoco-core==4.0.0",
    "glfw==2.11.0",
    "pyopengl==3.1.10",
]
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]
GL_DEBS = ["libvulkan1", "libegl1", "libglvnd0", "libopengl0", "libgl1", "libglx0", "libgles2"]
ASSET_PACKAGES = ("robosuite", "pybullet_data", "dm_control", "gymnasium_robotics", "metaworld")
TRACE_SNIPPET = """
import os, sys
os.environ["MUJOCO_GL"] = "egl"
from offline_training.sim import render_two_view_clip
render_two_view_clip(sys.argv[1], num_frames=1, height=48, width=64, seed=0)
"""


def package_root() -> Path:
    """The site-packages directory holding the robot wheels' package directories."""
    from offline_training.sim.assets import package_dir

    found = [package_dir(name) for name in ASSET_PACKAGES if package_dir(name)]
    if not found:
        sys.exit("none of the robot wheels is installed here: pip install --no-deps " + " ".join(ASSET_PACKAGES))
    return Path(found[0]).parent


def download_wheels(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        *[f"--platform={p}" for p in PLATFORMS],
        "-d",
        str(dest),
        *WHEELS,
    ]
    subprocess.run(command, check=True)


def download_gl(dest: Path) -> None:
    """The amd64 .debs of the GL loaders, as the device README says (its own apt lists, nothing installed here)."""
    dest.mkdir(parents=True, exist_ok=True)
    lists = Path(tempfile.mkdtemp(prefix="apt-amd64-"))
    (lists / "partial").mkdir()
    options = ["-oAPT::Architecture=amd64", "-oAPT::Architectures=amd64", f"-oDir::State::Lists={lists}"]
    subprocess.run(["apt-get", *options, "-q", "update"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", *options, "download", *GL_DEBS], check=True, cwd=dest, stdout=subprocess.DEVNULL)
    shutil.rmtree(lists, ignore_errors=True)


def robot_files(robot: str, root: Path) -> set[Path]:
    """Files under the robot wheels' directories that loading and rendering `robot` opens (strace)."""
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": "egl"}
        subprocess.run(
            [
                "strace",
                "-f",
                "-qq",
                "-e",
                "trace=open,openat",
                "-o",
                str(trace),
                sys.executable,
                "-c",
                TRACE_SNIPPET,
                robot,
            ],
            check=True,
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        opened = set(re.findall(r'open(?:at)?\([^"]*"([^"]+)"[^)]*\)\s*=\s*\d', trace.read_text()))
    prefixes = tuple(str(root / name) + os.sep for name in ASSET_PACKAGES)
    # textures included: a robot's own MJCF may name some (metaworld's scene does)
    return {Path(p) for p in opened if p.startswith(prefixes) and not p.endswith((".py", ".pyc")) and Path(p).is_file()}


def texture_files(root: Path, budget: int) -> list[Path]:
    """The smallest surface textures the scenes draw from (offline_training.sim.assets.surface_textures), up to
    `budget` bytes."""
    from offline_training.sim.assets import surface_textures

    chosen, total = [], 0
    for path in sorted((Path(p) for p in surface_textures()), key=lambda p: p.stat().st_size):
        if total + path.stat().st_size > budget:
            break
        chosen.append(path)
        total += path.stat().st_size
    return chosen


def pack_assets(out: Path, robots: list[str], budget: int, texture_budget: int) -> dict[str, object]:
    root = package_root()
    per_robot = {}
    for robot in robots:
        try:
            per_robot[robot] = robot_files(robot, root)
        except subprocess.CalledProcessError:
            print(f"  {robot}: does not load or render here, left out", flush=True)
            continue
        print(
            f"  {robot}: {len(per_robot[robot])} files, "
            f"{sum(p.stat().st_size for p in per_robot[robot]) / 2**20:.1f} MiB",
            flush=True,
        )
    files = set(texture_files(root, texture_budget))
    chosen = []
    # smallest additional footprint first; xz shrinks meshes about 3x, checked against the budget after packing
    for robot in sorted(per_robot, key=lambda r: sum(p.stat().st_size for p in per_robot[r] - files)):
        candidate = files | per_robot[robot]
        if sum(p.stat().st_size for p in candidate) / 3 > budget:
            continue
        files, chosen = candidate, chosen + [robot]
    with tarfile.open(out, "w:xz") as tar:
        for path in sorted(files):
            tar.add(path, arcname=str(path.relative_to(root)))
    if out.stat().st_size > budget:
        sys.exit(f"{out} is {out.stat().st_size / 2**20:.1f} MiB, over --assets-mib: pick fewer --robots")
    return {"robots": chosen, "files": len(files), "raw_mib": round(sum(p.stat().st_size for p in files) / 2**20, 1)}


def verify_assets(archive: Path) -> list[str]:
    """The train robots that load from `archive` alone: extracted into a temporary directory, imported by a Python
    that sees this environment's packages except the robot wheels (as on the device)."""
    root = package_root()
    with tempfile.TemporaryDirectory() as tmp:
        assets, site = Path(tmp) / "assets", Path(tmp) / "site"
        assets.mkdir()
        site.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(assets, filter="data")
        for entry in root.iterdir():  # this environment's packages, the robot wheels left out
            if not entry.name.startswith(ASSET_PACKAGES):
                (site / entry.name).symlink_to(entry)
        code = (
            "import sys, json; sys.path[:0] = sys.argv[1:]; from offline_training.sim import available_robots; "
            "print(json.dumps(available_robots('train')))"
        )
        done = subprocess.run(
            [sys.executable, "-S", "-c", code, str(ROOT), str(assets), str(site)],
            capture_output=True,
            text=True,
            env={**os.environ, "MUJOCO_GL": "egl"},
            check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def travelling_bytes(dest: Path) -> dict[str, int]:
    """What a device call sends: tracked and untracked-not-ignored files, plus the carried folder."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    tree = sum((ROOT / p).stat().st_size for p in listed if p and (ROOT / p).is_file())
    carried = {str(p.relative_to(ROOT)): p.stat().st_size for p in sorted(dest.rglob("*")) if p.is_file()}
    return {"working tree": tree, **carried}


def exclude(dest: Path) -> None:
    path = Path(
        subprocess.run(
            ["git", "rev-parse", "--git-path", "info/exclude"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    path = path if path.is_absolute() else ROOT / path
    line = f"/{dest.name}/"
    if line not in (path.read_text().splitlines() if path.exists() else []):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"\n{line}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report the sizes of what would travel")
    parser.add_argument("--robots", default="", help="comma list (default: every train-split robot that loads)")
    parser.add_argument("--assets-mib", type=float, default=20.0, help="size limit of assets.tar.xz")
    parser.add_argument("--texture-mib", type=float, default=4.0, help="raw size limit of the surface textures")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if not args.check:
        exclude(DEST)
        print("wheels ...", flush=True)
        shutil.rmtree(DEST / "wheels", ignore_errors=True)
        download_wheels(DEST / "wheels")
        print("GL loaders ...", flush=True)
        shutil.rmtree(DEST / "gl", ignore_errors=True)
        download_gl(DEST / "gl")
        from offline_training.sim import available_robots

        robots = [r for r in args.robots.split(",") if r] or available_robots("train")
        print(f"robot assets of {robots} ...", flush=True)
        summary = pack_assets(
            DEST / "assets.tar.xz", robots, int(args.assets_mib * 2**20), int(args.texture_mib * 2**20)
        )
        summary["loads_from_archive"] = verify_assets(DEST / "assets.tar.xz")
        (DEST / "assets.json").write_text(json.dumps(summary, indent=1))
        print(f"assets: {summary}")
        missing = sorted(set(summary["robots"]) - set(summary["loads_from_archive"]))
        if missing:
            sys.exit(f"robots {missing} were packed but do not load from {DEST / 'assets.tar.xz'} alone")
    sizes = travelling_bytes(DEST)
    total = sum(sizes.values())
    print("| what travels | MiB |\n|---|---:|")
    for name, size in sizes.items():
        print(f"| {name} | {size / 2**20:.2f} |")
    print(f"| **total** (limit 64) | **{total / 2**20:.2f}** |")
    return 0 if total <= LIMIT else 1


if __name__ == "__main__":
    raise SystemExit(main())
