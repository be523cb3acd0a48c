"""Identification on LFW: closed-set rank-1 and the open-set table by gallery size.

- rank-1: one photo enrolled per person with at least two found photos, every other photo queried;
- open set, per half of the identities (``choose``, ``report``): a third of the half's people are held out
  (their photos are the unknown queries); a gallery of ``size`` people drawn from the rest, one photo each
  (people with one photo are enrolled too: they are the crowd a real gallery holds); the other photos of
  the enrolled people are the known queries. Rates are pooled over random draws (fixed seed).
- ``identify_similarity`` per gallery size: the lowest similarity from which on at most ``UNKNOWN_LIMIT`` of
  the unknown queries get a name, chosen on ``choose``; the report half's rates at it are what we report.
- the target scenario: 5 people enrolled from 3 photos each (report half), their other photos and everyone
  else's photos queried at the shipped threshold for 15 enrolled faces.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from models.identity.lfw import half, person
from models.identity.metrics import SIMILARITY_GRID, best_matches, lowest_safe_threshold, open_set_rates

UNKNOWN_LIMIT = 0.01
GALLERY_SIZES = (1, 10, 100, 1000)
DRAWS = {1: 300, 10: 100, 100: 20, 1000: 5}
HELD_OUT = 1 / 3
SEED = 17


def by_person(found: np.ndarray, keys: list[str]) -> dict[str, list[int]]:
    people: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        if found[i]:
            people[person(key)].append(i)
    return dict(people)


def rank1(vectors: np.ndarray, people: dict[str, list[int]]) -> dict[str, Any]:
    enrolled = {name: photos for name, photos in people.items() if len(photos) >= 2}
    names = sorted(enrolled)
    gallery = vectors[[enrolled[n][0] for n in names]]
    queries = [(i, n) for n in names for i in enrolled[n][1:]]
    _, named = best_matches(gallery, np.array(names), vectors[[i for i, _ in queries]])
    correct = float(np.mean(named == np.array([n for _, n in queries])))
    return {"accuracy": correct, "people": len(names), "queries": len(queries)}


def open_set(
    vectors: np.ndarray, people: dict[str, list[int]], size: int, draws: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Pooled rates per threshold for galleries of ``size`` people (one photo each) from ``people``."""
    totals = {key: np.zeros(len(SIMILARITY_GRID)) for key in ("correct_accept", "wrong_name", "unknown_accepted")}
    names = sorted(people)
    counts = [0, 0]
    for _ in range(draws):
        order = rng.permutation(len(names))
        held = [names[i] for i in order[: int(len(names) * HELD_OUT)]]
        pool = [names[i] for i in order[int(len(names) * HELD_OUT) :]]
        enrolled = pool[:size]
        if not any(len(people[n]) > 1 for n in enrolled):
            enrolled = [n for n in pool if len(people[n]) > 1][:1] + enrolled[: size - 1]
        gallery = vectors[[people[n][0] for n in enrolled]]
        known = [(i, n) for n in enrolled for i in people[n][1:]]
        unknown = [(i, n) for n in held for i in people[n]]
        queries = known + unknown
        best, named = best_matches(gallery, np.array(enrolled), vectors[[i for i, _ in queries]])
        truth = np.array([n for _, n in queries])
        is_known = np.arange(len(queries)) < len(known)
        rates = open_set_rates(best, named, truth, is_known, SIMILARITY_GRID)
        for key in totals:
            weight = len(known) if key != "unknown_accepted" else len(unknown)
            totals[key] = totals[key] + rates[key] * weight
        counts[0] += len(known)
        counts[1] += len(unknown)
    return {
        "gallery_size": size,
        "draws": draws,
        "known_queries": counts[0],
        "unknown_queries": counts[1],
        "thresholds": SIMILARITY_GRID.tolist(),
        "correct_accept": (totals["correct_accept"] / max(counts[0], 1)).tolist(),
        "wrong_name": (totals["wrong_name"] / max(counts[0], 1)).tolist(),
        "unknown_accepted": (totals["unknown_accepted"] / max(counts[1], 1)).tolist(),
    }


def five_by_three(
    vectors: np.ndarray, people: dict[str, list[int]], threshold: float, rng: np.random.Generator, draws: int = 200
) -> dict[str, Any]:
    """5 people enrolled from 3 photos each: share of their other photos named right, of others' answered null."""
    eligible = sorted(n for n, photos in people.items() if len(photos) >= 4)
    named_right = known = null = unknown = 0
    for _ in range(draws):
        chosen = [eligible[i] for i in rng.choice(len(eligible), 5, replace=False)]
        gallery_rows = [(i, n) for n in chosen for i in people[n][:3]]
        gallery = vectors[[i for i, _ in gallery_rows]]
        labels = np.array([n for _, n in gallery_rows])
        known_rows = [(i, n) for n in chosen for i in people[n][3:]]
        others = [i for n, photos in people.items() if n not in chosen for i in photos]
        best, named = best_matches(gallery, labels, vectors[[i for i, _ in known_rows]])
        named_right += int(((best >= threshold) & (named == np.array([n for _, n in known_rows]))).sum())
        known += len(known_rows)
        best_others, _ = best_matches(gallery, labels, vectors[others])
        null += int((best_others < threshold).sum())
        unknown += len(others)
    return {
        "threshold": threshold,
        "draws": draws,
        "eligible_people": len(eligible),
        "named_correctly": named_right / known,
        "others_null": null / unknown,
        "known_queries": known,
        "unknown_queries": unknown,
    }


def identification_report(
    vectors: np.ndarray, found: np.ndarray, keys: list[str], shipped: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Rank-1, the open-set tables and thresholds chosen on ``choose``, and the 5 x 3 scenario on ``report``.

    The scenario runs at the threshold for 15 enrolled faces of ``shipped`` (an artifact's
    ``identify_similarity``) when given, else of the thresholds chosen here.
    """
    rng = np.random.default_rng(SEED)
    people = by_person(found, keys)
    halves = {name: {n: p for n, p in people.items() if half(n) == name} for name in ("choose", "report")}
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, members in halves.items():
        limit = int(len(members) * (1 - HELD_OUT))
        tables[name] = [open_set(vectors, members, size, DRAWS[size], rng) for size in GALLERY_SIZES if size <= limit]
    chosen = []
    for choose_row, report_row in zip(tables["choose"], tables["report"], strict=False):
        grid = np.array(choose_row["thresholds"])
        similarity = lowest_safe_threshold(grid, np.array(choose_row["unknown_accepted"]), UNKNOWN_LIMIT)
        at = int(np.argmin(np.abs(grid - similarity)))
        chosen.append(
            {
                "gallery_size": choose_row["gallery_size"],
                "similarity": similarity,
                "report": {key: report_row[key][at] for key in ("correct_accept", "wrong_name", "unknown_accepted")},
                "choose": {key: choose_row[key][at] for key in ("correct_accept", "wrong_name", "unknown_accepted")},
            }
        )
    table = shipped or chosen
    faces_15 = max((row for row in table if row["gallery_size"] <= 15), key=lambda row: row["gallery_size"])
    return {
        "people": {name: len(members) for name, members in halves.items()},
        "rank1": rank1(vectors, people),
        "tables": tables,
        "chosen": chosen,
        "unknown_limit": UNKNOWN_LIMIT,
        "five_by_three": five_by_three(vectors, halves["report"], faces_15["similarity"], rng),
    }


def shipped_thresholds(identification: dict[str, Any], verify_distance: float) -> dict[str, Any]:
    """The contract's ``hyperparameters.thresholds``; 10,000 faces extrapolated from the 100 -> 1,000 step."""
    entries = [
        {"gallery_size": row["gallery_size"], "similarity": row["similarity"]} for row in identification["chosen"]
    ]
    if len(entries) >= 3 and entries[-1]["gallery_size"] == 1000:
        step = entries[-1]["similarity"] - entries[-2]["similarity"]
        entries.append(
            {"gallery_size": 10000, "similarity": round(min(entries[-1]["similarity"] + max(step, 0.0), 0.98), 3)}
        )
    return {"verify_distance": verify_distance, "identify_similarity": entries}
