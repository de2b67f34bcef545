"""A run's EMA weights written as the method's safetensors file: the export every trainer offers (``--export``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

#: A method's writer: ``save(state_dict, config, path, *, metadata, dtype)``.
SaveWeights = Callable[..., None]


#: A note a photo folder may carry on where its photos came from (``tools/make-device-pack.py`` writes one),
#: so weights trained on a copy name the originals.
SOURCE_NOTE = "SOURCE.txt"


def describe_training_data(data: object, degradation: str) -> str:
    """The exported file's ``training_data``: the folder the run was given (with its source note, if it
    has one), its split and the degradation."""
    where = str(data) if data else "a photo folder not recorded in the checkpoint"
    if data:
        note = Path(str(data)) / SOURCE_NOTE
        if note.is_file():
            where = f"{where} ({' '.join(note.read_text(encoding='utf-8', errors='replace').split())[:200]})"
    return f"{where}, 90% of the photos by file name (10% held out), {degradation}"


def read_run_state(args: argparse.Namespace, stage: str) -> Mapping[str, Any]:
    """The checkpoint of ``stage`` in the run folder ``args.out`` (tensors and plain values only, never code)."""
    path = args.out / f"{stage}.pt"
    if not path.exists():
        raise SystemExit(f"nothing to export: no {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def export_ema(
    args: argparse.Namespace,
    *,
    stage: str,
    config_from_json: Callable[[str], Any],
    save: SaveWeights,
    trained_by: str,
    degradation: str,
    then: str = "",
) -> int:
    """Write the EMA weights of ``stage`` to ``args.export`` (float16 with ``args.fp16``); ``then`` is advice
    printed after the file's name (a step still to run on it)."""
    state = read_run_state(args, stage)
    meta = {"training_data": describe_training_data(state.get("data"), degradation), "trained_by": trained_by,
            "steps": str(state["step"])}
    save(state["ema"], config_from_json(state["config"]), args.export, metadata=meta,
         dtype=torch.float16 if args.fp16 else torch.float32)
    size_mb = args.export.stat().st_size / 1e6
    print(f"wrote {args.export} ({stage}, step {state['step']}, {size_mb:.1f} MB){then}", file=sys.stderr)
    return 0
