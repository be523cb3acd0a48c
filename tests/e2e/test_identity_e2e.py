"""Two real server processes on one identity database (SQLite file, then a real PostgreSQL), real faces.

What the issue asks of replicas: an enrolment through one is visible through the other within the poll
interval; a delete disappears from both; two replicas enrolling at once lose nothing; a database outage
answers 503 with Retry-After while /identify keeps answering from the last index.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import PostgresCluster, start_postgres
from tests.support.servers import LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.shared, pytest.mark.slow]
TOKEN = "identity-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
POLL_S = 1.0
HANG_S = 60  # bounds a wait for replicas to converge: a few identify requests, each seconds on a loaded machine
# People whose LFW photos mostly hold one face for the shipped detector (its first six: 6 each, Serena Williams 5:
# a blur in 0041's background reads as a face on the thumbnail path; tests that need one face take `one_face`).
PEOPLE = ("Serena_Williams", "Gerhard_Schroeder", "Jennifer_Aniston", "Arnold_Schwarzenegger")


@dataclass
class Replicas:
    a: LiveServer
    b: LiveServer
    lfw: Path
    postgres: PostgresCluster | None

    def photos(self, person: str) -> list[Path]:
        return sorted((self.lfw / person).glob("*.jpg"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def replicas(
    request: pytest.FixtureRequest, shared_dir: Path, embedded_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    cluster = None
    if request.param == "postgresql":
        cluster = start_postgres()
        if cluster is None:
            pytest.skip("PostgreSQL binaries are absent (/usr/lib/postgresql/*/bin): apt-get install postgresql")
        url = cluster.url
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'identities.sqlite3'}"
    env = {"DEEPCANVAS_DATABASE_URL": url, "DEEPCANVAS_ADMIN_TOKEN": TOKEN, "DEEPCANVAS_IDENTITY_POLL_S": str(POLL_S)}
    # Replica b runs the embedder on OpenVINO: descriptors of one artifact version compare across backends.
    servers = [
        LiveServer.start(embedded_store.as_uri(), env | {"DEEPCANVAS_CACHE_DIR": str(tmp_path_factory.mktemp("c"))}),
        LiveServer.start(
            embedded_store.as_uri(),
            env
            | {"DEEPCANVAS_CACHE_DIR": str(tmp_path_factory.mktemp("c")), "DEEPCANVAS_EMBEDDER_BACKEND": "openvino"},
        ),
    ]
    try:
        for server in servers:
            server.wait_ready()
        yield Replicas(servers[0], servers[1], shared_dir / "data" / "lfw-funneled" / "images", cluster)
    finally:
        for server in servers:
            server.stop()
        if cluster is not None:
            cluster.remove()


def enrol(server: LiveServer, name: str, photos: list[Path]) -> dict[str, object]:
    files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    response = httpx.post(f"{server.url}/identities", data={"name": name}, files=files, headers=ADMIN, timeout=120)
    assert response.status_code == 201, response.text
    return dict(response.json())


def identified(server: LiveServer, photo: Path) -> dict[str, object] | None:
    response = httpx.post(f"{server.url}/identify", files={"image": (photo.name, photo.read_bytes())}, timeout=60)
    assert response.status_code == 200, response.text
    [face] = response.json()["faces"]
    return face["identity"]  # type: ignore[no-any-return]


def one_face(server: LiveServer, photos: list[Path]) -> list[Path]:
    """The photos in which the served detector finds exactly one face (LFW photos may show a second person)."""

    def faces(photo: Path) -> int:
        response = httpx.post(f"{server.url}/detect", files={"image": (photo.name, photo.read_bytes())}, timeout=60)
        assert response.status_code == 200, response.text
        return len(response.json()["detections"])

    return [photo for photo in photos if faces(photo) == 1]


def seconds_until(check: object, timeout: float) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, f"not true within {timeout}s"
        time.sleep(0.1)
    return time.monotonic() - started


def test_an_enrolment_through_one_replica_is_named_by_the_other_within_the_poll_interval(replicas: Replicas) -> None:
    photos = one_face(replicas.a, replicas.photos("Serena_Williams"))
    serena = enrol(replicas.a, "Serena Williams", photos[:2])
    assert identified(replicas.a, photos[3]) == identified(replicas.a, photos[3]) is not None  # a: at once
    query = photos[4]  # a photo never enrolled

    enrolled = time.monotonic()
    last_miss = 0.0  # when the latest check that did not name her was sent, after the enrolment

    def b_names_her() -> bool:
        nonlocal last_miss
        sent = time.monotonic() - enrolled
        found = identified(replicas.b, query)
        if found is not None and found["id"] == serena["id"]:
            return True
        last_miss = sent
        return False

    seconds_until(b_names_her, HANG_S)
    # b had her by the time its last miss was sent: what bounds that is b's poll (interval and work), not how long
    # an identify request takes, which a loaded machine stretches to seconds.
    assert last_miss <= POLL_S + 2
    stranger = replicas.photos("Jennifer_Aniston")[0]
    assert identified(replicas.b, stranger) is None


def test_a_delete_through_one_replica_disappears_from_both(replicas: Replicas) -> None:
    photos = replicas.photos("Gerhard_Schroeder")
    gerhard = enrol(replicas.a, "Gerhard Schroeder", photos[:2])
    seconds_until(lambda: identified(replicas.b, photos[3]) is not None, HANG_S)
    response = httpx.delete(f"{replicas.b.url}/identities/{gerhard['id']}", headers=ADMIN, timeout=60)
    assert response.status_code == 204
    assert identified(replicas.b, photos[3]) is None  # b: at once
    seconds_until(lambda: identified(replicas.a, photos[3]) is None, HANG_S)
    time.sleep(2 * POLL_S)
    assert identified(replicas.a, photos[4]) is None and identified(replicas.b, photos[4]) is None
    assert httpx.get(f"{replicas.a.url}/identities/{gerhard['id']}", headers=ADMIN, timeout=60).status_code == 404


def test_two_replicas_enrolling_at_once_lose_nothing(replicas: Replicas) -> None:
    before = httpx.get(f"{replicas.a.url}/identities", headers=ADMIN, timeout=60).json()["total"]
    photo = [replicas.photos("Arnold_Schwarzenegger")[0]]
    jobs = [(server, f"{side}-{i}") for i in range(6) for side, server in (("a", replicas.a), ("b", replicas.b))]
    with ThreadPoolExecutor(len(jobs)) as pool:
        made = list(pool.map(lambda job: enrol(job[0], job[1], photo), jobs))
    assert len({m["id"] for m in made}) == len(jobs)
    for server in (replicas.a, replicas.b):
        listed = httpx.get(f"{server.url}/identities", params={"limit": 1000}, headers=ADMIN, timeout=60).json()
        assert listed["total"] == before + len(jobs)
        assert {m["id"] for m in made} <= {i["id"] for i in listed["identities"]}

    def both_index_all() -> bool:
        sizes = [
            httpx.post(f"{s.url}/identify", files={"image": photo[0].read_bytes()}, timeout=60).json()["gallery_size"]
            for s in (replicas.a, replicas.b)
        ]
        return sizes[0] == sizes[1] >= len(jobs)

    seconds_until(both_index_all, HANG_S)


def test_a_name_or_id_the_database_cannot_hold_gets_a_422(replicas: Replicas) -> None:
    """PostgreSQL's text refuses a NUL: the service must say so before the database does (it answered 500)."""
    photo = replicas.photos(PEOPLE[0])[:1]
    files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in photo]
    url = replicas.a.url
    for name in ("Ada\x00Lovelace", "Ada\nLovelace"):
        response = httpx.post(f"{url}/identities", data={"name": name}, files=files, headers=ADMIN, timeout=120)
        assert response.status_code == 422, response.text
        assert "control characters" in response.json()["detail"]
    for request in (httpx.get, httpx.delete):
        response = request(f"{url}/identities/abc%00def", headers=ADMIN, timeout=30)
        assert response.status_code == 422, response.text
    response = httpx.post(f"{url}/identities/abc%00def/faces", files=files, headers=ADMIN, timeout=60)
    assert response.status_code == 422, response.text
    assert httpx.get(f"{url}/identities", headers=ADMIN, timeout=30).status_code == 200


def test_a_database_outage_answers_503_and_identify_keeps_serving(replicas: Replicas) -> None:
    if replicas.postgres is None:
        pytest.skip("the outage is staged by stopping the PostgreSQL cluster")
    photos = one_face(replicas.a, replicas.photos("Jennifer_Aniston"))
    assert len(photos) >= 5, "the test needs five one-face photos of one person"
    jennifer = enrol(replicas.a, "Jennifer Aniston", photos[:2])
    seconds_until(lambda: identified(replicas.b, photos[3]) is not None, HANG_S)
    replicas.postgres.stop()
    try:
        files = [("image", (photos[2].name, photos[2].read_bytes(), "image/jpeg"))]
        for server in (replicas.a, replicas.b):
            response = httpx.post(
                f"{server.url}/identities", data={"name": "x"}, files=files, headers=ADMIN, timeout=60
            )
            assert response.status_code == 503 and response.headers["retry-after"] == "5", response.text
            assert "database" in response.json()["detail"]
            assert httpx.get(f"{server.url}/identities", headers=ADMIN, timeout=60).status_code == 503
        time.sleep(2 * POLL_S)  # polls fail meanwhile
        for server in (replicas.a, replicas.b):
            found = identified(server, photos[4])
            assert found is not None and found["id"] == jennifer["id"]
    finally:
        replicas.postgres.start()
    again = [("image", (photos[2].name, photos[2].read_bytes(), "image/jpeg"))]

    def enrols_again() -> bool:
        response = httpx.post(
            f"{replicas.b.url}/identities", data={"name": "J"}, files=again, headers=ADMIN, timeout=60
        )
        return response.status_code == 201

    seconds_until(enrols_again, HANG_S)  # the pool reconnects once the database is back
