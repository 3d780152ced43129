"""Least-squares polynomial fit of one column of a CSV table against another.

Reports coefficients with standard errors, R² (plain and adjusted), RMSE and the residuals,
and draws the data with the fitted curve. Writes fit.json, residuals.csv and fit.png into the
working directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MAX_ROWS = 5_000_000


def fail(message: str) -> None:
    print(f"linfit: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_columns(path: Path, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        for name in (x_name, y_name):
            if name not in header:
                fail(f"column {name!r} is not in the table (columns: {', '.join(header) or 'none'})")
        xs, ys = [], []
        for line, row in enumerate(reader, start=2):
            if len(xs) >= MAX_ROWS:
                fail(f"more than {MAX_ROWS} rows")
            try:
                xs.append(float(row[x_name]))
                ys.append(float(row[y_name]))
            except (TypeError, ValueError):
                fail(f"line {line}: {x_name}={row.get(x_name)!r}, {y_name}={row.get(y_name)!r} are not both numbers")
    return np.asarray(xs), np.asarray(ys)


def plot(x: np.ndarray, y: np.ndarray, coefficients: np.ndarray, path: Path) -> None:
    width, height, pad = 640, 480, 40
    curve_x = np.linspace(x.min(), x.max(), 200)
    curve_y = np.polyval(coefficients, curve_x)
    lo, hi = min(y.min(), curve_y.min()), max(y.max(), curve_y.max())
    span_x, span_y = (x.max() - x.min()) or 1.0, (hi - lo) or 1.0

    def to_px(px: float, py: float) -> tuple[float, float]:
        return pad + (px - x.min()) / span_x * (width - 2 * pad), height - pad - (py - lo) / span_y * (height - 2 * pad)

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([pad, pad, width - pad, height - pad], outline="black")
    for px, py in zip(x, y, strict=True):
        cx, cy = to_px(px, py)
        draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=(40, 90, 200))
    draw.line([to_px(a, b) for a, b in zip(curve_x, curve_y, strict=True)], fill=(200, 40, 40), width=2)
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--x", required=True)
    parser.add_argument("--y", required=True)
    parser.add_argument("--degree", type=int, required=True)
    args = parser.parse_args()

    x, y = read_columns(args.table, args.x, args.y)
    n, terms = len(x), args.degree + 1
    if n <= terms:
        fail(f"{n} rows cannot determine a degree-{args.degree} fit; at least {terms + 1} are needed")
    if np.ptp(x) == 0:
        fail(f"column {args.x!r} is constant; nothing to fit against")

    coefficients, cov = np.polyfit(x, y, args.degree, cov=True)
    fitted = np.polyval(coefficients, x)
    residuals = y - fitted
    ss_res, ss_tot = float(residuals @ residuals), float(((y - y.mean()) ** 2).sum())
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else 1.0
    dof = n - terms
    result = {
        "x": args.x,
        "y": args.y,
        "degree": args.degree,
        "rows": n,
        "degrees_of_freedom": dof,
        "coefficients_highest_power_first": coefficients.tolist(),
        "standard_errors": np.sqrt(np.clip(np.diag(cov), 0, None)).tolist(),
        "r2": r2,
        "adjusted_r2": 1 - (1 - r2) * (n - 1) / dof,
        "rmse": math.sqrt(ss_res / n),
        "residual_std": math.sqrt(ss_res / dof),
    }
    Path("fit.json").write_text(json.dumps(result, indent=2) + "\n")
    with open("residuals.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([args.x, args.y, "fitted", "residual"])
        writer.writerows(zip(x.tolist(), y.tolist(), fitted.tolist(), residuals.tolist(), strict=True))
    plot(x, y, coefficients, Path("fit.png"))
    print(f"fitted degree {args.degree} to {n} rows: r2={r2:.4f}")


if __name__ == "__main__":
    main()
