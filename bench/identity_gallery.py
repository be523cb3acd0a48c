"""``python -m bench.identity_gallery URL``: what a large gallery costs a replica, without models or HTTP.

Fills the database at ``URL`` (an empty SQLite file or PostgreSQL database) with ``--faces`` synthetic identities
of one unit descriptor each through ``repository.enrol`` (the gallery's own writes), then, with one replica
reading and another writing: the start-up load (everything, cursor 0) with its resident-memory growth, a poll
that finds nothing, a poll after the other replica enrolled or deleted one identity, a local enrolment, and the
index search for one and five faces. Medians of ``--repeat`` runs; docs/identity.md has the numbers.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

import numpy as np
import typer

from app.identities import repository
from app.identities.database import migrate, open_engine
from app.identities.gallery import IdentityGallery

EMBEDDER = "face-embedder/v1"


def resident_mb() -> float:
    """This process's resident memory (Linux), MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def median_ms(step: Callable[[], Awaitable[object]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await step()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def once_ms(step: Awaitable[object]) -> float:
    started = time.perf_counter()
    await step
    return (time.perf_counter() - started) * 1000


async def measure(url: str, faces: int, repeat: int) -> None:
    engine = open_engine(url)
    migrate(engine)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((faces, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    started = time.perf_counter()
    ids = [repository.enrol(engine, f"Person {i}", [vectors[i]], EMBEDDER)[0] for i in range(faces)]
    print(f"inserted {faces} identities through repository.enrol in {time.perf_counter() - started:.1f} s")
    engine.dispose()

    before = resident_mb()
    reader, writer = IdentityGallery(open_engine(url)), IdentityGallery(open_engine(url))
    started = time.perf_counter()
    await reader.refresh(EMBEDDER)
    load_ms = (time.perf_counter() - started) * 1000
    print(f"start-up load: {load_ms:.0f} ms, {reader.loaded_index().size} faces, +{resident_mb() - before:.0f} MB")
    await writer.refresh(EMBEDDER)
    print(f"poll, nothing new: {await median_ms(lambda: reader.refresh(EMBEDDER), repeat):.1f} ms")
    enrolled, deleted, local = [], [], []
    for i in range(repeat):
        await writer.enrol(f"New {i}", [vectors[i]], EMBEDDER)
        enrolled.append(await once_ms(reader.refresh(EMBEDDER)))
        await writer.delete(ids[i])
        deleted.append(await once_ms(reader.refresh(EMBEDDER)))
        local.append(await once_ms(writer.enrol(f"Local {i}", [vectors[i]], EMBEDDER)))
    print(f"poll after another replica's enrolment: {statistics.median(enrolled):.1f} ms")
    print(f"poll after another replica's deletion: {statistics.median(deleted):.1f} ms")
    print(f"local enrolment (database and own index): {statistics.median(local):.1f} ms")
    index = reader.loaded_index()

    async def search(count: int) -> None:
        index.search(vectors[100 : 100 + count], 5)

    print(f"search, 1 face: {await median_ms(lambda: search(1), 50):.2f} ms; 5 faces: ", end="")
    print(f"{await median_ms(lambda: search(5), 50):.2f} ms")
    reader.close()
    writer.close()


def main(
    url: Annotated[str, typer.Argument(help="An empty database: sqlite:///path or postgresql+psycopg://...")],
    faces: Annotated[int, typer.Option(min=1, help="Synthetic identities, one face each")] = 10_000,
    repeat: Annotated[int, typer.Option(min=1, help="Runs per median")] = 10,
) -> None:
    """Time a large gallery's load, polls, writes and searches."""
    asyncio.run(measure(url, faces, repeat))


if __name__ == "__main__":
    typer.run(main)
