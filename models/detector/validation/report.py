"""The validation report as Markdown: one comparison table, then each artifact's details.

Written into ``docs/detector.md`` (the comparison) and into each artifact's ``MODEL_CARD.md`` (between
markers, so a rerun replaces it).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- validation:begin -->", "<!-- validation:end -->"


def pct(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def tiling(row: dict[str, Any]) -> str:
    return "off" if row["tile"] == "off" else f"auto (> {row.get('tile_above', 1.5):g}× input)"


def comparison(reports: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| artifact | architecture | defaults (imgsz, tiling, conf) | CPU ms / wall ms, 1280×720 | precision | recall "
        "| AP50 | false / photo | crowds ≥32 px: recall, share of detections on no face | portraits: boxes "
        "| face-boxes (hand-drawn): precision, recall, AP50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        c, d = r["chosen"], r["details"]
        crowd = d["crowds_32px"]
        boxes = ", ".join(f"{k} {v}" for k, v in sorted(d["portrait_boxes"].items()))
        fb = r.get("face_boxes", {})
        lines.append(
            f"| {r['artifact']} | {r['architecture']} | {c['imgsz']}, {tiling(c)}, {c['conf']:g} "
            f"| {c['latency_ms']:.0f} / {c['wall_ms']:.0f} | {pct(d['all']['precision'])} | {pct(d['all']['recall'])} "
            f"| {pct(d['all']['ap50'])} | {d['all']['fp_per_photo']:.3f} "
            f"| {pct(crowd['recall'])}, {pct(1 - crowd['precision'])} | {boxes} "
            f"| {pct(fb.get('precision'))}, {pct(fb.get('recall'))}, {pct(fb.get('ap50'))} |"
        )
    return lines


def artifact_section(r: dict[str, Any]) -> list[str]:
    d = r["details"]
    lines = [f"### {r['artifact']} ({r['architecture']}, {r['backend']})", ""]
    lines += ["Sweep (best-F1 conf per row, faces ≥ 24 px):", ""]
    lines += ["| imgsz | tiling | conf | CPU ms | wall ms | precision | recall | F1 | AP50 | TP / FP / FN |"]
    lines += ["|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["sweep"]:
        lines.append(
            f"| {row['imgsz']} | {tiling(row)} | {row['conf']:g} | {row['latency_ms']:.0f} | {row['wall_ms']:.0f} "
            f"| {pct(row['precision'])} | {pct(row['recall'])} | {pct(row['f1'])} | {pct(row['ap50'])} "
            f"| {row['tp']:.0f} / {row['fp']:.0f} / {row['fn']:.0f} |"
        )
    unseen, half = d["unseen_by_v3"], d["conf_0.5"]
    lines += [
        "",
        f"Chosen: imgsz {r['chosen']['imgsz']}, tiling {tiling(r['chosen'])}, conf {r['chosen']['conf']:g} "
        f"(best F1 within {r['max_latency_ms']:g} CPU ms). Photos no YOLO version saw (the two moved crowds left "
        f"out): precision {pct(unseen['precision'])}, recall {pct(unseen['recall'])}, AP50 {pct(unseen['ap50'])}.",
        "",
        f"What `conf=0.5` means for it: of its detections at 0.5 or more (faces ≥ 24 px) {pct(half['precision'])} "
        f"are faces, and they find {pct(half['recall'])} of the faces ({half['fp_per_photo']:.3f} false per photo).",
        "",
        "Per face size (shorter side in the photo's pixels; `min_size` 0 here, so the < 24 band is visible):",
        "",
        "| band | faces | recall | detections | precision |",
        "|---|---|---|---|---|",
    ]
    for band in d["bands_min_size_0"]:
        lines.append(
            f"| {band['band']} | {band['faces']} | {pct(band['recall'])} | {band['detections']} "
            f"| {pct(band['precision'])} |"
        )
    lines += ["", "Reliability (faces ≥ 24 px): of the detections scoring in a bin, the share that are faces.", ""]
    lines += ["| score | detections | faces |", "|---|---|---|"]
    lines += [f"| {b['bin']} | {b['detections']} | {pct(b['faces'])} |" for b in d["reliability"]]
    return [*lines, ""]


def report_markdown(reports: list[dict[str, Any]], preface: list[str]) -> str:
    lines = [*preface, "", *comparison(reports), ""]
    for r in reports:
        lines += artifact_section(r)
    return "\n".join(lines).rstrip() + "\n"


def replace_section(path: Path, body: str, title: str) -> None:
    """Put ``body`` between the markers in ``path`` (appended, under ``title``, the first time)."""
    text = path.read_text() if path.is_file() else ""
    block = f"{BEGIN}\n{body}{END}\n"
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", lambda _: block, text, flags=re.S)
    else:
        text = f"{text.rstrip()}\n\n## {title}\n\n{block}" if text else f"## {title}\n\n{block}"
    path.write_text(text)
