"""Replicas converging on the store's documents (``_runtime/active.json``, ``_runtime/params.json``) at each poll,
whatever else in the store is broken (in-process, fake predictors, a poll interval of a few milliseconds)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.manager import SlotPlan
from app.runtime import ACTIVE_KEY, PARAMS_KEY, poll_store
from app.services import LoadFollowUps
from app.settings import Settings
from app.store.objects import StoreUnavailable
from models.artifact import Manifest
from tests.support.app_client import wait_ready
from tests.support.fakes import FakeStyle, copy_as_version, fake_plans, make_fake_store

TOKEN = "s3cret-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    store = make_fake_store(tmp_path / "store")
    copy_as_version(store / "face-gender" / "v1", store / "face-gender" / "v2", "v2")
    copy_as_version(store / "face-detector" / "v1", store / "face-detector" / "v2", "v2")
    return store


@contextmanager
def replica(store: Path, tmp_path: Path, poll_s: float = 0.01) -> Iterator[TestClient]:
    """A ready replica on ``store`` that polls it every ``poll_s`` seconds."""
    settings = Settings(
        store=store.as_uri(),
        cache_dir=tmp_path / "cache",
        admin_token=TOKEN,  # type: ignore[arg-type]
        params_poll_s=poll_s,
    )
    with TestClient(create_app(settings, fake_plans())) as client:
        yield wait_ready(client)


def until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """``check()``'s first truthy result; fails naming ``what`` after ``timeout`` seconds (generous: polls are ms)."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)
    return result


def write_runtime(store: Path, key: str, text: str) -> None:
    (store / key).parent.mkdir(exist_ok=True)
    (store / key).write_text(text)


def write_active(store: Path, version: int, active: dict[str, str]) -> None:
    """Another replica's activation, as it lands in the store."""
    write_runtime(store, ACTIVE_KEY, json.dumps({"version": version, "active": active}))


def served(client: TestClient, role: str) -> dict[str, Any]:
    model: dict[str, Any] = client.get("/readyz").json()["models"][role]
    return model


def test_a_role_that_cannot_converge_does_not_hold_back_the_others(store: Path, tmp_path: Path) -> None:
    with replica(store, tmp_path) as client:
        manager, active = client.app.state.manager, client.app.state.active  # type: ignore[attr-defined]
        write_active(store, 1, {"classifier": "v9", "detector": "v2"})  # v9 is not published (yet)
        until(lambda: served(client, "detector")["version"] == "v2", "detector on v2")
        detector = manager.slots["detector"]
        assert served(client, "classifier")["version"] == "v1"
        assert active.document.version == 0  # not adopted: the classifier is retried at every poll
        copy_as_version(store / "face-gender" / "v1", store / "face-gender" / "v9", "v9")
        until(lambda: active.document.version == 1, "the document adopted once the classifier converged")
        assert served(client, "classifier")["version"] == "v9"
        assert served(client, "classifier")["ref"] == "v9" and served(client, "detector")["ref"] == "v2"
        assert manager.slots["detector"] is detector  # converged once: not loaded again at each poll


def test_an_activation_here_does_not_end_the_retries_of_a_role_that_has_not_converged(
    store: Path, tmp_path: Path
) -> None:
    """The document an activation writes names the other roles' versions too: adopting it while one of them does
    not serve its version here (another replica's choice, not published yet) made every later poll skip it, and
    the replicas served different versions for good."""
    with replica(store, tmp_path) as client:
        manager, active = client.app.state.manager, client.app.state.active  # type: ignore[attr-defined]
        write_active(store, 1, {"classifier": "v9", "detector": "v2"})  # v9 is not published (yet)
        until(lambda: served(client, "detector")["version"] == "v2", "detector on v2")
        switched = client.post("/admin/models/face-detector/activate", headers=AUTH, json={"version": "v1"})
        assert switched.status_code == 200, switched.text
        recorded = json.loads((store / ACTIVE_KEY).read_text())
        assert (recorded["version"], recorded["active"]) == (2, {"classifier": "v9", "detector": "v1"})
        assert served(client, "detector")["version"] == "v1"
        assert active.document.version < 2  # not adopted: the classifier does not serve v9 here
        detector = manager.slots["detector"]
        copy_as_version(store / "face-gender" / "v1", store / "face-gender" / "v9", "v9")
        until(lambda: served(client, "classifier")["version"] == "v9", "the classifier converged on v9")
        until(lambda: active.document.version == 2, "the document adopted once every role serves its version")
        assert manager.slots["detector"] is detector  # already on v1: not loaded again


def test_an_activation_with_every_other_role_converged_adopts_its_document(store: Path, tmp_path: Path) -> None:
    with replica(store, tmp_path, poll_s=3600) as client:  # no poll: the activation itself adopts it
        active = client.app.state.active  # type: ignore[attr-defined]
        switched = client.post("/admin/models/face-gender/activate", headers=AUTH, json={"version": "v2"})
        assert switched.status_code == 200, switched.text
        assert (active.document.version, active.document.active) == (1, {"classifier": "v2"})


def test_a_poll_that_read_the_store_before_an_activation_here_does_not_undo_it(store: Path, tmp_path: Path) -> None:
    """A poll reads the document, then loads role after role: an admin activation here in between records a newer
    document, and the poll's stale one must not swap the role activated back to its old version."""
    copy_as_version(store / "face-detector" / "v1", store / "face-detector" / "v3", "v3")
    with replica(store, tmp_path, poll_s=3600) as client:  # no poll of its own: the test runs the one it needs
        manager, active = client.app.state.manager, client.app.state.active  # type: ignore[attr-defined]
        write_active(store, 1, {"classifier": "v9", "detector": "v2"})  # as a poll reads it, before the activation
        real = manager.activate

        async def scenario() -> None:
            reached, go = asyncio.Event(), asyncio.Event()

            async def held(role: str, ref: str, **options: Any) -> str:
                if role == "classifier":  # the poll's first role: held until the activation here is done
                    reached.set()
                    await go.wait()
                version: str = await real(role, ref, **options)
                return version

            manager.activate = held
            poll = asyncio.create_task(active.refresh())
            await asyncio.wait_for(reached.wait(), 30)
            assert await active.activate("detector", "v3", "admin") == "v3"
            go.set()
            await asyncio.wait_for(poll, 30)

        client.portal.call(scenario)
        manager.activate = real
        assert served(client, "detector")["version"] == "v3"  # not v2, the stale document's
        assert json.loads((store / ACTIVE_KEY).read_text())["active"] == {"classifier": "v9", "detector": "v3"}


@pytest.mark.parametrize("broken", ["malformed JSON", "an invalid value", "a bug"])
def test_parameters_that_cannot_be_read_do_not_stop_models_converging(store: Path, tmp_path: Path, broken: str) -> None:
    with replica(store, tmp_path) as client:
        if broken == "a bug":

            async def fails() -> bool:
                raise RuntimeError("a bug in reading the parameters")

            client.app.state.params.refresh = fails  # type: ignore[attr-defined]
        else:
            params = "{" if broken == "malformed JSON" else json.dumps({"version": 1, "params": {"queue_size": -1}})
            write_runtime(store, PARAMS_KEY, params)
        write_active(store, 1, {"classifier": "v2"})
        until(lambda: served(client, "classifier")["version"] == "v2", "classifier on v2 despite the parameters")


def test_a_model_that_failed_to_load_is_retried_whatever_the_documents_hold(store: Path, tmp_path: Path) -> None:
    (store / "face-gender").rename(tmp_path / "face-gender")  # not published yet: the classifier fails at start
    write_runtime(store, PARAMS_KEY, "{")
    write_runtime(store, ACTIVE_KEY, "{")
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache", params_poll_s=0.01)
    with TestClient(create_app(settings, fake_plans())) as client:
        until(lambda: served(client, "classifier")["state"] == "failed", "the classifier failed")
        (tmp_path / "face-gender").rename(store / "face-gender")
        wait_ready(client, timeout=30)
        assert served(client, "classifier")["version"] == "v1"


def test_unreadable_parameters_at_start_do_not_stop_the_stored_versions_being_served(
    store: Path, tmp_path: Path
) -> None:
    write_runtime(store, PARAMS_KEY, "{")
    write_active(store, 1, {"classifier": "v2"})
    with replica(store, tmp_path, poll_s=3600) as client:  # no poll: loaded at start as the document says
        assert served(client, "classifier")["version"] == "v2"


class RememberingStyle(FakeStyle):
    """A style model that keeps the gallery's statistics (``remember_styles``); records each time it is asked."""

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest)
        self.remembered: list[tuple[int, int]] = []

    def remember_styles(self, styles: list[Any], max_side: int) -> None:
        self.remembered.append((len(styles), max_side))


class DeferredWarmUp(FakeStyle):
    """NST's stand-in: its plan defers the warm-up past readiness; counts the warm-ups."""

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest)
        self.warm_ups = 0

    def warmup(self) -> None:
        self.warm_ups += 1


def style_plans() -> list[SlotPlan]:
    """``fake_plans``, with a style model that keeps gallery statistics and an NST whose warm-up is deferred."""
    others = [plan for plan in fake_plans() if plan.role != "style"]
    return [
        *others,
        SlotPlan("style", "style", lambda folder, manifest, device: RememberingStyle(manifest)),
        SlotPlan("nst", "style", lambda folder, manifest, device: DeferredWarmUp(manifest), warmup=False),
    ]


def prepared(client: TestClient) -> tuple[list[tuple[int, int]], int]:
    """What the serving style model has remembered, and how often the serving NST was warmed up."""
    slots = client.app.state.manager.slots  # type: ignore[attr-defined]
    return slots["style"].predictor.remembered, slots["nst"].predictor.warm_ups


def test_style_models_loaded_after_the_start_still_get_gallery_statistics_and_warm_up(
    store: Path, tmp_path: Path
) -> None:
    copy_as_version(store / "adain" / "v1", store / "adain" / "v2", "v2")
    away = tmp_path / "away"
    store.rename(away)  # the store unreachable as the replica starts: no model loads
    settings = Settings(
        store=store.as_uri(),
        cache_dir=tmp_path / "cache",
        admin_token=TOKEN,  # type: ignore[arg-type]
        params_poll_s=0.01,
        store_retries=0,
    )
    with TestClient(create_app(settings, style_plans())) as client:
        until(lambda: served(client, "style")["state"] == "failed", "the style model failed to load")
        away.rename(store)  # back: the next poll loads every model
        wait_ready(client, timeout=30)
        until(lambda: prepared(client) == ([(1, 1024)], 1), "statistics and warm-up once the models loaded")
        switched = client.post("/admin/models/adain/activate", headers=AUTH, json={"version": "v2"})
        assert switched.status_code == 200, switched.text
        until(lambda: prepared(client) == ([(1, 1024)], 1), "statistics and warm-up for the version activated")
        patch = {"stylize_max_side": 512}
        assert client.patch("/admin/params", headers=AUTH | {"If-Match": "*"}, json=patch).status_code == 200
        until(lambda: prepared(client) == ([(1, 1024), (1, 512)], 1), "statistics at the side requests now use")


def test_a_role_that_cannot_converge_logs_its_reason_once_not_at_every_poll(
    store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Retried at every poll (10 s by default) for as long as the store names it: an error line each time would
    bury everything else in the log. A new reason (another version named, another error) is logged again."""
    caplog.set_level(logging.ERROR, logger="deepcanvas")
    with replica(store, tmp_path) as client:
        manager = client.app.state.manager  # type: ignore[attr-defined]
        write_active(store, 1, {"classifier": "v9"})  # never published
        polls = manager.status["classifier"]
        until(lambda: polls.detail and "v9" in polls.detail, "the first failed poll")
        first = len(caplog.records)
        attempts = [0]
        real = manager.activate

        async def counted(*args: Any, **kwargs: Any) -> Any:
            attempts[0] += 1
            return await real(*args, **kwargs)

        manager.activate = counted
        until(lambda: attempts[0] >= 10, "ten more polls")
        assert len(caplog.records) == first, [r.getMessage() for r in caplog.records[first:]]
        write_active(store, 2, {"classifier": "v8"})  # another reason: logged
        until(lambda: any("v8" in r.getMessage() for r in caplog.records), "the new reason logged")


def test_a_role_that_failed_at_start_and_cannot_converge_either_logs_each_reason_once(
    store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The classifier failed at start (its configured version) and the store names another one: each poll tries the
    stored version, then the retry of the failed models the configured one. Two reasons in turn, each logged once,
    not both at every poll."""
    caplog.set_level(logging.ERROR, logger="deepcanvas")
    (store / "face-gender").rename(tmp_path / "face-gender")  # the classifier cannot load at start
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache", params_poll_s=0.01)
    with TestClient(create_app(settings, fake_plans())) as client:
        manager = client.app.state.manager  # type: ignore[attr-defined]
        until(lambda: served(client, "classifier")["state"] == "failed", "the classifier failed")
        write_active(store, 1, {"classifier": "v9"})  # another replica's choice, not published here
        tried: list[str] = []
        real = manager.activate

        async def counted(role: str, ref: str, **options: Any) -> Any:
            tried.append(ref)
            return await real(role, ref, **options)

        manager.activate = counted
        configured = served(client, "classifier")["ref"]  # what the retry of the failed models tries
        until(lambda: tried.count("v9") >= 2 and tried.count(configured) >= 2, "both versions tried at two polls")
        first = len(caplog.records)
        until(lambda: tried.count("v9") >= 12 and tried.count(configured) >= 12, "ten more polls")
        assert len(caplog.records) == first, [r.getMessage() for r in caplog.records[first:]]


def test_a_follow_up_still_running_holds_back_neither_the_parameters_nor_the_models(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The follow-ups (a deferred NST warm-up queued behind a painting of up to a minute) run beside the polls: a
    parameters change and another version still apply meanwhile, and no second follow-up starts beside it."""
    entered: list[str] = []
    release = threading.Event()

    async def held(self: LoadFollowUps) -> None:
        entered.append("follow-up")
        while not release.is_set():
            await asyncio.sleep(0.01)

    monkeypatch.setattr(LoadFollowUps, "run", held)
    try:
        with replica(store, tmp_path) as client:
            until(lambda: len(entered) >= 2, "the start's follow-up and a poll's, both held")
            write_runtime(store, PARAMS_KEY, json.dumps({"version": 1, "params": {"queue_size": 7}}))
            write_active(store, 1, {"classifier": "v2"})
            params = client.app.state.params  # type: ignore[attr-defined]
            until(lambda: params.document.version == 1, "the parameters applied while the follow-up runs")
            until(lambda: served(client, "classifier")["version"] == "v2", "the classifier converged meanwhile")
            assert params.params.queue_size == 7
            assert len(entered) == 2  # one poll's follow-up at a time: the later polls started none
            release.set()
            until(lambda: len(entered) >= 3, "a later poll's follow-up, once the held one ended")
    finally:
        release.set()


async def _poll_until(poll: Coroutine[Any, Any, None], done: Callable[[], bool], what: str) -> None:
    """Run ``poll`` (a ``poll_store``) until ``done()``, at most 30 s, then stop it."""
    task = asyncio.create_task(poll)
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, f"not {what} within 30 s"
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_a_follow_up_that_fails_is_logged_and_the_next_poll_starts_another(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="deepcanvas.runtime")

    class Refreshes:
        async def refresh(self) -> None:
            pass

        async def retry_failed(self) -> None:
            pass

    calls: list[int] = []

    async def broken() -> None:
        calls.append(1)
        raise RuntimeError("a bug in a follow-up")

    async def scenario() -> None:
        active = Refreshes()
        active.manager = Refreshes()  # type: ignore[attr-defined]
        poll = poll_store(Refreshes(), active, 0.001, broken)  # type: ignore[arg-type]
        await _poll_until(poll, lambda: len(calls) >= 3, "three follow-ups")

    asyncio.run(scenario())
    assert any("warm up the models loaded since" in r.getMessage() for r in caplog.records)
    assert any("a bug in a follow-up" in (r.exc_text or str(r.exc_info)) for r in caplog.records)


def test_a_step_failing_at_every_poll_is_logged_once_per_reason_and_its_recovery_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An S3 outage wrote one warning per poll step at every poll (three lines every 10 s) while it lasted."""
    caplog.set_level(logging.DEBUG, logger="deepcanvas.runtime")
    outcomes = ["away"] * 20 + ["ok"] * 5 + ["away"] * 5 + ["bug"] * 5 + ["ok"]
    tried: list[str] = []

    class Params:
        async def refresh(self) -> None:
            outcome = outcomes[min(len(tried), len(outcomes) - 1)]
            tried.append(outcome)
            if outcome == "away":
                raise StoreUnavailable("the store at http://127.0.0.1:9 did not answer")
            if outcome == "bug":
                raise KeyError("a bug in the parameters")

    class Idle:
        async def refresh(self) -> None:
            pass

        async def retry_failed(self) -> None:
            pass

    async def scenario() -> None:
        active: Any = Idle()
        active.manager = Idle()
        poll = poll_store(Params(), active, 0.001)  # type: ignore[arg-type]
        await _poll_until(poll, lambda: len(tried) >= len(outcomes) + 2, "every outcome polled")

    asyncio.run(scenario())
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno > logging.DEBUG]
    outage = (logging.WARNING, "could not apply the stored parameters: the store at http://127.0.0.1:9 did not answer")
    recovered = (logging.INFO, "could apply the stored parameters again")
    bug = (logging.ERROR, "could not apply the stored parameters")
    # 25 polls away in two spells, 5 with a bug: one line at the start of each spell, one at each recovery
    assert lines == [outage, recovered, outage, bug, recovered]
    bug_records = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "a bug in the parameters" in (bug_records[0].exc_text or "")  # its traceback, once
    assert sum("could not apply" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG) == 27


def test_a_document_naming_an_alias_is_served_once_and_adopted(store: Path, tmp_path: Path) -> None:
    """A role serves versions: compared with ``stable``, it never matched, and every poll loaded it again."""
    (store / "face-gender" / "aliases.json").write_text(json.dumps({"stable": "v1", "next": "v2"}))
    with replica(store, tmp_path) as client:
        manager, active = client.app.state.manager, client.app.state.active  # type: ignore[attr-defined]
        write_active(store, 1, {"classifier": "next"})  # as an operator may write it by hand
        until(lambda: active.document.version == 1, "the document adopted")
        assert served(client, "classifier")["version"] == "v2"
        loaded = manager.slots["classifier"]
        polls = [0]
        real = active.refresh

        async def counted() -> None:
            polls[0] += 1
            await real()

        active.refresh = counted
        until(lambda: polls[0] >= 10, "ten more polls")
        assert manager.slots["classifier"] is loaded  # not loaded again


def test_stopping_the_poll_while_a_follow_up_runs_leaves_no_warm_up_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """The follow-up's deferred warm-up ran beside the gallery statistics: a poll cancelled at shutdown during the
    statistics left the warm-up running after the models were closed, never awaited."""

    class Idle:
        async def refresh(self) -> None:
            pass

        async def retry_failed(self) -> None:
            pass

    async def scenario() -> list[str]:
        warming = asyncio.Event()

        class Manager:
            def __init__(self) -> None:
                self.slots = {"style": object(), "gallery": object()}

            async def warm_deferred(self) -> list[str]:
                warming.set()
                await asyncio.sleep(3600)  # NST's first backward pass, on its slot's thread
                return []

        async def slow_statistics(manager: Any, side: int) -> int:
            await asyncio.sleep(3600)
            return 0

        monkeypatch.setattr("app.services.remember_gallery_styles", slow_statistics)
        active: Any = Idle()
        active.manager = Idle()
        follow_ups = LoadFollowUps(Manager(), lambda: 512)  # type: ignore[arg-type]
        poll = asyncio.create_task(poll_store(Idle(), active, 0.001, follow_ups.run))  # type: ignore[arg-type]
        await asyncio.wait_for(warming.wait(), 30)
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)
        return [task.get_name() for task in asyncio.all_tasks() if task is not asyncio.current_task()]

    assert asyncio.run(scenario()) == []
