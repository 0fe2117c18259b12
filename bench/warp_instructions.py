"""Instructions executed by the forward warp and by the plain nearest-point splat it is measured against, counted by
valgrind's callgrind: deterministic numbers for kernel work on a machine whose timings drift by 20 % within minutes
and which exposes no hardware performance counters (see docs/DESIGN.md, facts).

    python bench/warp_instructions.py [--json out.json]

Needs `valgrind` (with its headers, /usr/include/valgrind) and a C compiler; takes about two minutes. The script
re-runs itself under `valgrind --tool=callgrind --instr-atstart=no`, so only the measured calls are instrumented:
a small library built on the fly switches instrumentation on and off around each call through callgrind's client
requests. The cases are bench_warp.py's 480x640 frames with depth as cameras give it. Under valgrind numba compiles
for the CPU valgrind emulates (no AVX-512), so the counts describe that build; compare them with each other, not
with native timings.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

_CLIENT_REQUESTS = r"""
#include <valgrind/callgrind.h>
void count_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void count_stop(const char *label) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT(label); }
"""
_CHILD_ENV = "EMBODY4D_UNDER_CALLGRIND"


def _build_client_library(directory: str) -> str:
    source, library = os.path.join(directory, "count.c"), os.path.join(directory, "libcount.so")
    with open(source, "w") as handle:
        handle.write(_CLIENT_REQUESTS)
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("a C compiler is needed to build callgrind's client requests: apt install gcc")
    result = subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-o", library, source], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"building the client-request library failed (apt install valgrind?):\n{result.stderr}")
    return library


def _measure(library: str) -> None:
    """Child, under callgrind: run every stage once to warm up, then once between count_start / count_stop."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import numpy as np
    from bench_warp import nearest_point_splat, real_depth_cases

    from model.geometry import OrbitTarget, forward_warp, target_transform, warp_numba
    from model.geometry.base import DEFAULT_SETTINGS, intrinsics_vector

    counter = ctypes.CDLL(library)
    settings = DEFAULT_SETTINGS
    T = target_transform(OrbitTarget(yaw_deg=10.0, forward_m=0.1, pivot_m=1.5))
    rotation, translation = np.ascontiguousarray(T[:3, :3]), np.ascontiguousarray(T[:3, 3])
    thresholds = warp_numba.kernel_thresholds(settings)
    for case, (_, image, depth, K) in enumerate(real_depth_cases(T)):
        height, width = depth.shape
        k = intrinsics_vector(K)
        pose = (k, k, rotation, translation)
        reliability = np.ones(depth.shape, np.float32)
        work = warp_numba._band_arrays(1, width, height, width)[0]
        colour, coverage, out_depth = np.zeros_like(image), np.zeros((height, width), np.float32), np.empty_like(depth)
        splat_colour, zbuffer = np.zeros_like(image), np.empty((height, width))

        def splat() -> None:
            zbuffer.fill(np.inf)
            nearest_point_splat(image, depth, K, K, T, splat_colour, zbuffer)

        stages = {
            "splat": splat,
            "forward_warp": lambda: forward_warp(image, depth, K, K, T, (height, width)),
            "skirts": lambda: warp_numba._raster_skirts(
                depth,
                *pose,
                *thresholds,
                settings.occlude_unseen,
                1.0 + settings.unseen_depth_ratio,
                work.column,
                work.skirt_rows,
                work.skirt,
                work.span,
                0,
                height - 1,
            ),
            "mesh": lambda: warp_numba._splat_frame(
                image,
                depth,
                reliability,
                *pose,
                *thresholds,
                work.inverse_depth,
                colour,
                coverage,
                work.rows,
                work.column,
                work.skirt,
                work.span,
                0.5,
                0,
                height - 1,
                True,
            ),
            "coverage": lambda: warp_numba._finish_target(
                work.inverse_depth, coverage, out_depth, settings.edge_px, 0, height
            ),
        }
        for name, call in stages.items():
            call()
            counter.count_start()
            call()
            counter.count_stop(f"{case}:{name}".encode())


def _read_counts(directory: str) -> dict[str, int]:
    """{'case:stage': instructions} from callgrind's dumps (their `desc: Trigger` line carries the label)."""
    counts = {}
    for path in glob.glob(os.path.join(directory, "callgrind.out.*")):
        label = total = None
        with open(path) as handle:
            for line in handle:
                if line.startswith("desc: Trigger: Client Request: "):
                    label = line.split("Client Request: ", 1)[1].strip()
                elif line.startswith("totals:"):
                    total = int(line.split()[1])
        if label and total is not None:
            counts[label] = total
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the counts here too")
    args = parser.parse_args()
    if os.environ.get(_CHILD_ENV):
        _measure(os.environ[_CHILD_ENV])
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt install valgrind")
    with tempfile.TemporaryDirectory() as directory:
        env = dict(
            os.environ,
            **{_CHILD_ENV: _build_client_library(directory)},
            # numba compiles for valgrind's emulated CPU; keep those builds out of the native cache
            NUMBA_CACHE_DIR=os.path.join(tempfile.gettempdir(), "embody4d-numba-callgrind"),
            NUMBA_NUM_THREADS="1",
        )
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=callgrind.out.%p"]
        result = subprocess.run([*command, sys.executable, os.path.abspath(__file__)], cwd=directory, env=env)
        if result.returncode != 0:
            raise SystemExit(f"the run under valgrind failed (exit {result.returncode})")
        counts = _read_counts(directory)
    cases = sorted({label.split(":")[0] for label in counts})
    names = ("stereo-sensor depth", "Middlebury Motorcycle depth")
    print("| case | stage | instructions (M) | per source pixel | × the splat |\n|---|---|---:|---:|---:|")
    for case in cases:
        splat = counts[f"{case}:splat"]
        for stage in ("splat", "forward_warp", "skirts", "mesh", "coverage"):
            total = counts[f"{case}:{stage}"]
            print(
                f"| {names[int(case)]} | {stage} | {total / 1e6:.1f} | {total / (480 * 640):.0f} | "
                f"{total / splat:.2f} |"
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(counts, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
