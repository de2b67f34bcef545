#!/usr/bin/env python3
"""Copy the newly trained weights files whose method scored a higher PSNR than the shipped file did.

A lent GPU's machine goes back 30 s after a call ends, so the next call (which
continues training from ``INIT_DIR``) has to be chosen at once: this script,
run by ``tools/gpu-session.sh`` after its quality benchmarks, leaves in
``OUT_DIR`` exactly the files worth continuing (and, later, shipping).

    python3 tools/pick-better-weights.py SHIPPED.md NEW.md WEIGHTS_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

#: The row of ``bench/quality.py`` that decides for each shipped file: the method's default.
DECIDING_ROW = {
    "srdiff-x4.safetensors": "srdiff",
    "dtls-x4.safetensors": "dtls",
    "dossr-x4.safetensors": "dossr",
    "diffsr-prior.safetensors": "diffsr",
    "lddpm-x4.safetensors": "lddpm",
}


def psnr_by_method(markdown: str) -> dict[str, float]:
    """``{method: PSNR}`` from a ``bench/quality.py --markdown`` table (rows like ``| `dtls` | 35.72 | ...``)."""
    scores = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) > 1 and cells[0].startswith("`") and cells[0].endswith("`"):
            try:
                scores[cells[0].strip("`")] = float(cells[1])
            except ValueError:
                continue
    return scores


def better_files(shipped: dict[str, float], new: dict[str, float]) -> list[str]:
    """The files whose deciding row is in both tables and higher in the new one."""
    return [file for file, row in DECIDING_ROW.items() if row in shipped and row in new and new[row] > shipped[row]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shipped", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("weights", type=Path)
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    shipped = psnr_by_method(args.shipped.read_text(encoding="utf-8", errors="replace")) if args.shipped.exists() else {}
    new = psnr_by_method(args.new.read_text(encoding="utf-8", errors="replace")) if args.new.exists() else {}
    args.out.mkdir(parents=True, exist_ok=True)
    better = set(better_files(shipped, new))
    for file, row in DECIDING_ROW.items():
        picked = file in better and (args.weights / file).is_file()
        if picked:
            shutil.copy2(args.weights / file, args.out / file)
        print(f"{file}: {row} {shipped.get(row, 'n/a')} shipped, {new.get(row, 'n/a')} new: "
              f"{'better, kept' if picked else 'not kept'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
