"""Write a synthetic, seeded "diamonds-like" CSV: 53,940 rows, as big as ggplot2's diamonds table.

Run: .venv/bin/python bench/make_diamonds_like.py [PATH] [--rows N] [--seed S]
     (default PATH: diamonds_like.csv in the system's temp folder; prints the path)

Nothing is downloaded: the columns are drawn from distributions shaped like the real table's
(carat, cut, color, clarity, depth, table, price, x, y, z). Price, the target, grows with carat
and better grades. Like a spreadsheet export, about one row in five writes its price as quoted
thousands-separated text ("1,234"), so the upload goes through the loader's number parsing rather
than a clean numeric column.
"""
from __future__ import annotations

import argparse
import csv
import os
import tempfile

import numpy as np

ROWS = 53_940
CUTS = ["Fair", "Good", "Very Good", "Premium", "Ideal"]
COLORS = list("DEFGHIJ")  # D is the best colour
CLARITIES = ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"]


def make_rows(rows: int = ROWS, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """The header and the rows (as the strings written to the file) of a diamonds-like table."""
    rng = np.random.default_rng(seed)
    carat = np.clip(rng.gamma(2.2, 0.36, rows), 0.2, 5.0)
    cut = rng.choice(len(CUTS), rows, p=[0.03, 0.09, 0.22, 0.26, 0.40])
    color = rng.choice(len(COLORS), rows, p=[0.13, 0.18, 0.18, 0.21, 0.15, 0.10, 0.05])
    clarity = rng.choice(len(CLARITIES), rows, p=[0.01, 0.17, 0.24, 0.23, 0.15, 0.09, 0.07, 0.04])
    depth = rng.normal(61.75, 1.43, rows)
    table = rng.normal(57.46, 2.23, rows)
    x = 6.4 * carat ** (1 / 3) + rng.normal(0, 0.04, rows)
    y = x + rng.normal(0, 0.04, rows)
    z = x * depth / 100 + rng.normal(0, 0.02, rows)
    grade = 0.04 * cut - 0.06 * color + 0.09 * clarity
    price = np.clip(np.round(3900 * carat ** 1.7 * np.exp(grade + rng.normal(0, 0.12, rows))), 326, 18_823)
    as_text = rng.random(rows) < 0.2  # rows whose numbers a spreadsheet wrote with separators, quoted
    header = ["carat", "cut", "color", "clarity", "depth", "table", "price", "x", "y", "z"]
    out = []
    for i in range(rows):
        p = int(price[i])
        out.append([
            f"{carat[i]:.2f}", CUTS[cut[i]], COLORS[color[i]], CLARITIES[clarity[i]], f"{depth[i]:.1f}",
            f"{table[i]:.0f}", f"{p:,}" if as_text[i] else str(p), f"{x[i]:.2f}", f"{y[i]:.2f}", f"{z[i]:.2f}",
        ])
    return header, out


def write(path: str, rows: int = ROWS, seed: int = 0) -> str:
    """Write the table to `path` (quoting only the fields that need it: "1,234"); returns `path`."""
    header, body = make_rows(rows, seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(body)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=os.path.join(tempfile.gettempdir(), "diamonds_like.csv"))
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write(args.path, args.rows, args.seed))


if __name__ == "__main__":
    main()
