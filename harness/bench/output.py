"""Writing a run's files: bench.json (+ its JSON Schema) and bench.csv."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import astuple
from pathlib import Path

from harness.bench.schema import BenchResult, json_schema_text
from harness.bench.throughput import CSV_FIELDS, JobRow

JSON_NAME = "bench.json"
SCHEMA_NAME = "bench.schema.json"
CSV_NAME = "bench.csv"
REPORT_NAME = "report.html"


def write_json(result: BenchResult, out_dir: Path) -> Path:
    path = out_dir / JSON_NAME
    path.write_text(result.model_dump_json(indent=2) + "\n")
    (out_dir / SCHEMA_NAME).write_text(json_schema_text())
    return path


def write_csv(rows: Iterable[JobRow], out_dir: Path) -> Path:
    path = out_dir / CSV_NAME
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_FIELDS)
        for row in rows:
            writer.writerow(
                ["" if v is None else (f"{v:.6f}" if isinstance(v, float) else v) for v in astuple(row)]
            )
    return path
