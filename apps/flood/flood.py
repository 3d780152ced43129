"""Shallow-flood routing over an elevation grid: where does the rain pool?

A mass-conserving diffusive-wave scheme: each step, water moves across every cell face from
the higher water surface (ground + depth) to the lower, a quarter of the difference at most
and never more than a quarter of the donor's depth, so depths stay non-negative and the
total volume is exact up to rounding. Boundaries are closed (water pools) or open (water
leaves the grid through edge faces).

Reads a CSV grid of ground elevations in metres. Writes depth.csv (final depth, m),
max_depth.csv, summary.json and flood_map.png into the working directory. Progress is
reported on stdout as ``##quern progress PERCENT "STEP"`` lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

MAX_CELLS = 4_000_000


def fail(message: str) -> None:
    print(f"flood: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_grid(path: Path) -> np.ndarray:
    try:
        grid = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        fail(f"{path.name} is not a rectangular grid of numbers: {exc}")
    if grid.size > MAX_CELLS:
        fail(f"grid has {grid.size} cells; at most {MAX_CELLS} are allowed")
    if grid.shape[0] < 3 or grid.shape[1] < 3:
        fail(f"grid is {grid.shape[0]}x{grid.shape[1]}; at least 3x3 is needed")
    if not np.isfinite(grid).all():
        fail("grid contains NaN or infinite elevations")
    return grid


def step(ground: np.ndarray, depth: np.ndarray, open_edges: bool) -> float:
    """Move water for one step in place; returns the volume (m of depth x cells) that left the grid."""
    surface = ground + depth
    # Flow across vertical faces (x) and horizontal faces (y); positive = towards higher index.
    fx = np.clip(0.25 * (surface[:, :-1] - surface[:, 1:]), -depth[:, 1:] / 4, depth[:, :-1] / 4)
    fy = np.clip(0.25 * (surface[:-1, :] - surface[1:, :]), -depth[1:, :] / 4, depth[:-1, :] / 4)
    depth[:, :-1] -= fx
    depth[:, 1:] += fx
    depth[:-1, :] -= fy
    depth[1:, :] += fy
    if not open_edges:
        return 0.0
    # Outside the grid the water surface is the edge cell's ground: only its water drains out.
    left = 0.0
    for edge in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):
        out = depth[edge] / 4
        depth[edge] -= out
        left += float(out.sum())
    return left


def hillshade(ground: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(ground)
    slope = np.pi / 2 - np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(-gx, gy)
    azimuth, altitude = np.radians(315), np.radians(45)
    shade = np.sin(altitude) * np.sin(slope) + np.cos(altitude) * np.cos(slope) * np.cos(azimuth - aspect)
    return np.clip(shade, 0, 1)


def render(ground: np.ndarray, depth: np.ndarray, path: Path, scale: int) -> None:
    grey = 60 + 170 * hillshade(ground)
    wet = np.clip(depth / max(float(depth.max()), 1e-9), 0, 1)
    wet[depth < 0.01] = 0
    rgb = np.stack([grey * (1 - wet), grey * (1 - 0.6 * wet), grey * (1 - wet) + 255 * wet], axis=-1)
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), mode="RGB")
    image.resize((ground.shape[1] * scale, ground.shape[0] * scale), Image.Resampling.NEAREST).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elevation", type=Path, required=True)
    parser.add_argument("--rain-mm", type=float, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--cell-m", type=float, required=True)
    parser.add_argument("--boundary", choices=["closed", "open"], required=True)
    parser.add_argument("--threshold-m", type=float, required=True)
    args = parser.parse_args()

    ground = read_grid(args.elevation)
    depth = np.full_like(ground, args.rain_mm / 1000.0)
    initial = float(depth.sum())
    max_depth = depth.copy()
    drained = 0.0
    report_every = max(1, args.steps // 10)
    for i in range(1, args.steps + 1):
        drained += step(ground, depth, args.boundary == "open")
        np.maximum(max_depth, depth, out=max_depth)
        if i % report_every == 0 or i == args.steps:
            print(f'##quern progress {100 * i // args.steps} "routing step {i}/{args.steps}"', flush=True)

    cell_area = args.cell_m**2
    flooded = depth >= args.threshold_m
    summary = {
        "grid": {"rows": ground.shape[0], "columns": ground.shape[1], "cell_m": args.cell_m},
        "rain_mm": args.rain_mm,
        "steps": args.steps,
        "boundary": args.boundary,
        "rain_volume_m3": initial * cell_area,
        "stored_volume_m3": float(depth.sum()) * cell_area,
        "drained_volume_m3": drained * cell_area,
        "mass_balance_error_m3": (initial - float(depth.sum()) - drained) * cell_area,
        "max_depth_m": float(max_depth.max()),
        "flooded_cells": int(flooded.sum()),
        "flooded_area_m2": float(flooded.sum()) * cell_area,
        "threshold_m": args.threshold_m,
    }
    np.savetxt("depth.csv", depth, delimiter=",", fmt="%.4f")
    np.savetxt("max_depth.csv", max_depth, delimiter=",", fmt="%.4f")
    Path("summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    render(ground, depth, Path("flood_map.png"), scale=max(1, 512 // max(ground.shape)))
    print(f"flooded {summary['flooded_cells']} cells, max depth {summary['max_depth_m']:.3f} m")


if __name__ == "__main__":
    main()
