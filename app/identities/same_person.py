"""Whether the faces of an enrolment are one person, checked before anything is stored.

Photos a user mixed up (a sibling's, a wrong file) stored under one identity make /identify name a stranger as
that person. So every new face must be linked to the person by a chain of faces, each within the embedder's
calibrated /verify distance of the next (single linkage), the person being the identity's stored faces, or for a
new identity the largest group of its photos (none when two groups tie: then every photo is named).

Not every pair within the distance: one hard but genuine pair among five photos (a profile and a frontal view,
years apart) must not refuse an enrolment. Not merely a close neighbour for each face either: two photos each of
two people, or two photos of a stranger added to an identity, all have one.
"""

from __future__ import annotations

import numpy as np


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a_i - b_j||`` of L2-normalised rows (P, D) and (S, D) as (P, S), from their dot product
    (``thresholds``: distance² = 2 - 2·similarity), without a (P, S, D) difference for an identity of many faces."""
    similarity = a.astype(np.float64) @ b.astype(np.float64).T  # (P, S)
    return np.sqrt(np.maximum(0.0, 2.0 - 2.0 * similarity))


def unlinked(new: np.ndarray, stored: np.ndarray, limit: float) -> list[tuple[int, float]]:
    """The new faces (P, D) not linked to the person, each with its distance to the nearest face of the person (or,
    where there is none, of another group).

    The person: the faces linked to one of ``stored`` (S, D), the identity's faces; without any (a new identity,
    or one whose faces are all of another embedder version), the largest group of new faces, if one is larger than
    every other. A single new face with nothing stored has nothing to be compared with and is linked.
    """
    among = distances(new, new)  # (P, P), 0 on the diagonal
    joined = among <= limit  # (P, P): joined[i, j] once a chain of close faces links i and j
    for k in range(len(new)):  # Warshall's transitive closure, P ≤ 20 steps
        joined |= joined[:, k : k + 1] & joined[k : k + 1, :]
    to_stored = distances(new, stored)  # (P, S)
    if len(stored):
        linked = joined[:, (to_stored <= limit).any(axis=1)].sum(axis=1) > 0  # (P,) joined to a stored face
    else:
        sizes = joined.sum(axis=1)  # (P,) the size of each face's group
        largest = sizes == sizes.max()
        linked = largest if largest.sum() == sizes.max() else np.zeros_like(largest)  # one group, else none
    person = bool(linked.any()) or len(stored) > 0
    apart = np.where(linked[None, :], among, np.inf) if person else np.where(joined, np.inf, among)  # (P, P)
    nearest = np.minimum(apart.min(axis=1), to_stored.min(axis=1, initial=np.inf))  # (P,)
    return [(int(i), float(nearest[i])) for i in np.flatnonzero(~linked)]
