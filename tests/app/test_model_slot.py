"""The model slot: one thread per predictor, bounded queue, micro-batches routed to the right callers."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app.errors import Overloaded
from app.manager import Inference, ModelManager, ModelSlot, SlotPlan, inferences
from app.request_ids import RequestIdFilter, current_request_id
from app.settings import Settings
from app.timings import phases
from models.artifact import Manifest


def _manifest() -> Manifest:
    return Manifest(
        name="m", version="v1", task="classify", architecture="fake", files=[], provenance={"method": "test"}
    )  # type: ignore[arg-type]


class Doubler:
    """Returns each item doubled; records batch sizes and fails on a negative item.

    ``hold()`` makes calls wait inside ``predict`` until ``release()``: a test that needs a batch still running
    (or ended) says so, instead of hoping a sleep on the loop ends before (or after) one on the thread.
    """

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.batches: list[int] = []
        self.threads: set[int] = set()
        self._busy = threading.Lock()
        self._gate = threading.Event()
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def predict(self, batch: list[int]) -> list[int]:
        assert self._busy.acquire(blocking=False), "two threads inside predict at once"
        try:
            self.threads.add(threading.get_ident())
            self.batches.append(len(batch))
            assert self._gate.wait(HANG_S), "the test never released a held call"
            time.sleep(self.delay)
            if any(item < 0 for item in batch):
                raise ValueError("negative item")
            return [item * 2 for item in batch]
        finally:
            self._busy.release()


HANG_S = 30  # bounds a hang only: what a test waits for happens in milliseconds


async def _until(check: Callable[[], bool]) -> None:
    """Wait on the loop until ``check()`` holds (a batch has started, a slot has emptied)."""
    deadline = time.monotonic() + HANG_S
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.001)


class BatcherSleeps:
    """``app.manager``'s asyncio, whose ``sleep`` (only the batcher's wait for company calls it) is recorded and,
    while ``held``, returns only once the test has let more callers in: timing decides nothing."""

    def __init__(self, held: bool) -> None:
        self.waits: list[float] = []
        self.wake = asyncio.Event()
        if not held:
            self.wake.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self.wake.wait()


def _slot(predictor: Any, queue: int = 100, batch: int = 8, wait: float = 0.0) -> ModelSlot:
    return ModelSlot("m", _manifest(), predictor, lambda: queue, lambda: (batch, wait))


def test_concurrent_requests_share_batches_and_get_their_own_results() -> None:
    predictor = Doubler()

    async def scenario() -> list[list[int]]:
        slot = _slot(predictor, batch=4)
        return await asyncio.gather(*(slot.predict([i, i + 100]) for i in range(10)))

    results = asyncio.run(scenario())
    assert results == [[2 * i, 2 * (i + 100)] for i in range(10)]
    assert max(predictor.batches) == 4 and sum(predictor.batches) == 20
    assert len(predictor.batches) < 20  # really batched
    assert len(predictor.threads) == 1


def test_a_failing_batch_fails_its_callers_and_the_next_batch_still_runs() -> None:
    predictor = Doubler()

    async def scenario() -> tuple[list[Any], list[int]]:
        slot = _slot(predictor, batch=1)
        outcomes = await asyncio.gather(slot.predict([-1]), slot.predict([3]), return_exceptions=True)
        return outcomes, await slot.predict([5])

    outcomes, later = asyncio.run(scenario())
    assert isinstance(outcomes[0], ValueError) and outcomes[1] == [6] and later == [10]


def test_a_full_queue_raises_overloaded() -> None:
    async def scenario() -> list[Any]:
        slot = _slot(Doubler(delay=0.1), queue=3, batch=1)
        return await asyncio.gather(*(slot.predict([i]) for i in range(6)), return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert sum(isinstance(o, Overloaded) for o in outcomes) == 3
    assert [o for o in outcomes if not isinstance(o, Overloaded)] == [[0], [2], [4]]


def test_a_caller_that_leaves_does_not_disturb_the_others() -> None:
    predictor = Doubler(delay=0.0)

    async def scenario() -> list[int]:
        slot = _slot(predictor, batch=1)
        predictor.hold()
        first = asyncio.ensure_future(slot.predict([1]))
        leaving = asyncio.ensure_future(slot.predict([2]))
        await _until(lambda: predictor.batches == [1])  # the first batch runs; the second item waits its turn
        leaving.cancel()
        await _until(leaving.cancelled)
        predictor.release()
        return (await first) + await slot.predict([3])

    assert asyncio.run(scenario()) == [2, 6]
    assert sum(predictor.batches) == 2  # the cancelled item never ran


def test_a_busy_slot_waits_briefly_to_fill_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batcher's wait is held open until a fourth caller has come (on a loaded machine a real 50 ms wait
    could end first); a wait of 60 s keeps the slot "busy lately" however slow the first batch was."""
    predictor = Doubler(delay=0.01)
    sleeps = BatcherSleeps(held=True)
    monkeypatch.setattr("app.manager.asyncio", sleeps)

    async def scenario() -> None:
        slot = _slot(predictor, batch=8, wait=60)
        await slot.predict([0])  # marks the slot as recently busy
        late = [asyncio.ensure_future(slot.predict([i])) for i in range(3)]
        await _until(lambda: sleeps.waits != [])  # the batcher waits for company
        late.append(asyncio.ensure_future(slot.predict([9])))
        await _until(lambda: len(slot._waiting) == 4)
        sleeps.wake.set()
        await asyncio.gather(*late)

    asyncio.run(scenario())
    assert predictor.batches == [1, 4] and sleeps.waits == [60]


def test_a_lone_caller_never_waits_for_a_batch_that_nobody_else_will_join(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batcher's waits are recorded, not timed (a loaded machine makes five quick calls slow): a wait of
    60 s keeps the slot "busy lately", so only the lone caller decides that it never waits."""
    predictor = Doubler()
    sleeps = BatcherSleeps(held=False)
    monkeypatch.setattr("app.manager.asyncio", sleeps)

    async def scenario() -> None:
        slot = _slot(predictor, batch=8, wait=60)
        for i in range(5):  # a closed loop: each request arrives right after the previous batch
            await slot.predict([i])

    asyncio.run(scenario())
    assert sleeps.waits == []
    assert predictor.batches == [1] * 5


def test_each_inference_is_recorded_for_the_request_with_its_slot() -> None:
    async def scenario() -> list[Inference]:
        record: list[Inference] = []
        inferences.set(record)
        slot = _slot(Doubler())
        slot.name = "nst"  # one artifact may feed two slots: the record says which one ran
        await slot.predict([1])
        return record

    [(slot, name, version, seconds)] = asyncio.run(scenario())
    assert (slot, name, version) == ("nst", "m", "v1") and seconds >= 0.02


def test_the_batcher_runs_outside_the_context_of_the_request_that_started_it() -> None:
    """The batcher serves every caller: a line it logged must not carry the request id of whichever request
    happened to start it, nor anything it recorded land in that request's inferences or phases. Each caller
    still records its own inference, in its own context."""
    seen: list[tuple[object, object, object]] = []

    def limits() -> tuple[int, float]:  # called by the batcher, in its context, before each batch
        seen.append((current_request_id.get(), inferences.get(), phases.get()))
        return 8, 0.0

    async def caller(request_id: str, slot: ModelSlot) -> list[Inference]:
        record: list[Inference] = []
        current_request_id.set(request_id)
        inferences.set(record)
        phases.set([])
        assert await slot.predict([1]) == [2]
        return record

    async def scenario() -> list[list[Inference]]:
        slot = ModelSlot("m", _manifest(), Doubler(delay=0.0), lambda: 100, limits)
        return list(await asyncio.gather(caller("first", slot), caller("second", slot)))

    records = asyncio.run(scenario())
    assert seen and all(values == (None, None, None) for values in seen), seen
    assert [len(record) for record in records] == [1, 1]


def test_a_run_job_logs_with_the_id_of_the_request_it_works_for(caplog: pytest.LogCaptureFixture) -> None:
    """NST paints in ``run`` on the slot's thread, which an executor's ``submit`` started without the request's
    context: what the painting logged named no request. A job outside a request (a warm-up) still names none."""
    caplog.handler.addFilter(RequestIdFilter())  # as configure_logging's handler does
    painter = logging.getLogger("models.fake")

    async def scenario() -> None:
        slot = _slot(Doubler(delay=0.0))
        await slot.run(lambda _: painter.warning("warming up"))
        current_request_id.set("paint-1")
        await slot.run(lambda _: painter.warning("painting"))

    asyncio.run(scenario())
    lines = [(r.getMessage(), getattr(r, "request_id", None)) for r in caplog.records if r.name == painter.name]
    assert lines == [("warming up", None), ("painting", "paint-1")]


@pytest.mark.parametrize("queue", [1, 2])
def test_run_is_bounded_too(queue: int) -> None:
    async def scenario() -> list[Any]:
        slot = _slot(Doubler(delay=0.05), queue=queue)
        return await asyncio.gather(*(slot.run(lambda p: p.predict([1])) for _ in range(3)), return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert sum(isinstance(o, Overloaded) for o in outcomes) == 3 - queue


def test_a_slot_of_long_jobs_refuses_with_when_it_has_room() -> None:
    """NST's slot: its jobs are long (each bounded by a budget), so a refusal says when the running one ends at the
    latest, not "retry shortly"; a job that starts later than the one refused ends later still."""
    predictor = Doubler(delay=0.0)

    async def scenario() -> tuple[Overloaded, list[int]]:
        slot = ModelSlot("nst", _manifest(), predictor, lambda: 1, job_seconds=lambda: 40.0)
        predictor.hold()
        running = asyncio.ensure_future(slot.run(lambda p: p.predict([1])))
        await _until(lambda: predictor.batches == [1])  # inside the predictor: the job has begun
        [refused] = await asyncio.gather(slot.run(lambda p: p.predict([2])), return_exceptions=True)
        predictor.release()
        return refused, await running

    refused, result = asyncio.run(scenario())
    assert isinstance(refused, Overloaded) and result == [2]
    assert refused.retry_after is not None and 1 <= refused.retry_after <= 40  # what is left of the running one
    assert f"retry in {refused.retry_after} s" in refused.detail and "up to 40 s" in refused.detail


def test_a_refusal_counts_the_running_jobs_own_budget_when_it_is_shorter() -> None:
    """A painting asked for 8 s held the NST slot, and the next request was told to come back in 55 s (the
    service's most): Retry-After now counts the running job's own budget."""
    predictor = Doubler(delay=0.0)

    async def scenario() -> tuple[Overloaded, Overloaded]:
        slot = ModelSlot("nst", _manifest(), predictor, lambda: 1, job_seconds=lambda: 40.0)
        predictor.hold()
        running = asyncio.ensure_future(slot.run(lambda p: p.predict([1]), seconds=5.0))
        await _until(lambda: predictor.batches == [1])  # inside the predictor: the job has begun
        [short] = await asyncio.gather(slot.run(lambda p: p.predict([2])), return_exceptions=True)
        predictor.release()
        await running
        predictor.hold()  # a budget above the slot's most counts as the most
        running = asyncio.ensure_future(slot.run(lambda p: p.predict([3]), seconds=90.0))
        await _until(lambda: predictor.batches == [1, 1])
        [long] = await asyncio.gather(slot.run(lambda p: p.predict([4])), return_exceptions=True)
        predictor.release()
        await running
        assert slot._run_bounds == {}, "every ended job's bound is forgotten"
        return short, long

    short, long = asyncio.run(scenario())
    assert isinstance(short, Overloaded) and short.retry_after is not None and 1 <= short.retry_after <= 5
    assert isinstance(long, Overloaded) and long.retry_after is not None and 35 <= long.retry_after <= 40


def test_a_job_whose_caller_left_counts_only_until_it_stops() -> None:
    """Cancel on the page, then Stylize again: the next request was told to wait what the abandoned painting's
    budget had left (up to 55 s), though its caller stops it within a step."""
    predictor = Doubler(delay=0.0)

    async def scenario() -> tuple[Overloaded, Overloaded]:
        slot = ModelSlot("nst", _manifest(), predictor, lambda: 1, job_seconds=lambda: 40.0)
        predictor.hold()
        running = asyncio.ensure_future(slot.run(lambda p: p.predict([1]), seconds=30.0, stops_within=2.0))
        await _until(lambda: predictor.batches == [1])  # inside the predictor: the job has begun
        [before] = await asyncio.gather(slot.run(lambda p: p.predict([2])), return_exceptions=True)
        running.cancel()  # the client left; the job itself runs on until its caller's stop reaches it
        await asyncio.gather(running, return_exceptions=True)
        [after] = await asyncio.gather(slot.run(lambda p: p.predict([3])), return_exceptions=True)
        predictor.release()
        await _until(lambda: slot.pending == 0)
        assert slot._run_bounds == {}
        return before, after

    before, after = asyncio.run(scenario())
    assert isinstance(before, Overloaded) and before.retry_after is not None and 25 <= before.retry_after <= 30
    assert isinstance(after, Overloaded) and after.retry_after is not None and 1 <= after.retry_after <= 2


def test_a_slot_of_long_jobs_with_room_for_two_has_room_when_the_running_one_ends() -> None:
    """Queue 2, one painting running and one waiting: the running one's end makes room (the waiting one starts,
    and the slot holds one), so the refusal asks for what is left of it, not a whole job more."""
    predictor = Doubler(delay=0.0)

    async def scenario() -> tuple[Overloaded, list[list[int]]]:
        slot = ModelSlot("nst", _manifest(), predictor, lambda: 2, job_seconds=lambda: 40.0)
        predictor.hold()
        running = asyncio.ensure_future(slot.run(lambda p: p.predict([1])))
        await _until(lambda: predictor.batches == [1])  # inside the predictor: the job has begun
        waiting = asyncio.ensure_future(slot.run(lambda p: p.predict([2])))
        await _until(lambda: slot.pending == 2)
        [refused] = await asyncio.gather(slot.run(lambda p: p.predict([3])), return_exceptions=True)
        predictor.release()
        return refused, [await running, await waiting]

    refused, results = asyncio.run(scenario())
    assert isinstance(refused, Overloaded) and results == [[2], [4]]
    assert refused.retry_after is not None and 1 <= refused.retry_after <= 40  # not 40 more for the waiting one
    assert f"retry in {refused.retry_after} s" in refused.detail


def test_the_nst_slot_takes_its_own_queue_bound_and_budget_from_the_settings() -> None:
    from app.model_plans import default_plans

    settings = Settings(nst_queue_size=2, nst_max_seconds=30.0)
    [nst] = [plan for plan in default_plans(settings) if plan.slot == "nst"]
    assert nst.queue_limit is not None and nst.job_seconds is not None
    assert (nst.queue_limit(), nst.job_seconds()) == (2, 30.0)
    fake = replace(nst, build=lambda *_: Doubler(0.0))  # the plan's bounds, not torch's NST

    def built(queue_size: int) -> ModelSlot:
        manager = ModelManager(settings, OneManifestStore(), [fake], lambda: queue_size)  # type: ignore[arg-type]
        return manager._build_role("style", "stable")["nst"]

    roomy, tight = built(10), built(1)
    assert roomy.queue_limit() == 2 and roomy.job_seconds is not None  # below the runtime queue_size
    assert tight.queue_limit() == 1  # and never above it


class SlowToWarm(Doubler):
    """A predictor whose warm-up is deferred past readiness (NST's first backward pass); records where it ran."""

    def __init__(self, fails: bool = False) -> None:
        super().__init__(delay=0.0)
        self.fails = fails
        self.warmed_on: list[int] = []

    def warmup(self) -> None:
        self.warmed_on.append(threading.get_ident())
        if self.fails:
            raise RuntimeError("no memory for the warm-up")
        self.predict([1])  # on the slot's thread, like any call


def _manager(slots: dict[str, ModelSlot], warmup: bool = True) -> ModelManager:
    plans = [
        SlotPlan("nst", "style", lambda *_: None, warmup=False),
        SlotPlan("style", "style", lambda *_: None, warmup=True),
    ]
    manager = ModelManager(Settings(warmup=warmup), None, plans, lambda: 10)  # type: ignore[arg-type]
    manager.slots.update(slots)
    return manager


def test_a_deferred_warm_up_runs_after_load_on_the_slots_own_thread() -> None:
    deferred, eager = SlowToWarm(), SlowToWarm()
    manager = _manager({"nst": _slot(deferred), "style": _slot(eager)})
    assert asyncio.run(manager.warm_deferred()) == ["nst"]
    assert len(deferred.warmed_on) == 1 and deferred.warmed_on[0] != threading.get_ident()
    assert eager.warmed_on == []  # warmed at load already: not again


def test_each_slot_gets_its_deferred_warm_up_once_however_often_it_is_asked() -> None:
    first, second = SlowToWarm(), SlowToWarm()
    manager = _manager({"nst": _slot(first)})
    assert asyncio.run(manager.warm_deferred()) == ["nst"]
    assert asyncio.run(manager.warm_deferred()) == []  # asked again at every poll: done already
    manager.slots["nst"] = _slot(second)  # another version activated since
    assert asyncio.run(manager.warm_deferred()) == ["nst"]
    assert len(first.warmed_on) == len(second.warmed_on) == 1


def test_a_failing_deferred_warm_up_is_logged_not_raised_and_the_slot_still_serves() -> None:
    broken = SlowToWarm(fails=True)
    slot = _slot(broken)
    manager = _manager({"nst": slot})
    assert asyncio.run(manager.warm_deferred()) == []
    assert asyncio.run(slot.predict([3])) == [6]


def test_no_deferred_warm_up_when_warm_ups_are_off() -> None:
    deferred = SlowToWarm()
    assert asyncio.run(_manager({"nst": _slot(deferred)}, warmup=False).warm_deferred()) == []
    assert deferred.warmed_on == []


@pytest.fixture
def roomy_inline_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A quick call's time, on a loaded machine, may pass the 2 ms that decides "quick" (a busy CI runner took
    longer for a ``sleep(0)`` call): tests of what happens once a call runs inline allow it 2 s instead."""
    monkeypatch.setattr("app.manager.INLINE_SECONDS", 2.0)


def _quick_slot(predictor: Doubler, alone: bool | list[bool] = True) -> ModelSlot:
    """A slot whose ``alone()`` answers ``alone`` (a list: its first item, changeable while the test runs)."""
    flag = alone if isinstance(alone, list) else [alone]
    return ModelSlot("m", _manifest(), predictor, lambda: 100, lambda: (8, 0.0), alone=lambda: flag[0])


@pytest.mark.usefixtures("roomy_inline_budget")
def test_a_lone_request_on_a_quick_model_runs_on_the_event_loop_once_its_time_is_known() -> None:
    predictor = Doubler(delay=0.0)

    async def scenario() -> tuple[list[int], int]:
        slot = _quick_slot(predictor)
        results = [*(await slot.predict([1])), *(await slot.predict([2])), *(await slot.predict([3]))]
        return results, threading.get_ident()

    results, loop_thread = asyncio.run(scenario())
    assert results == [2, 4, 6]
    assert len(predictor.threads) == 2 and loop_thread in predictor.threads  # the first call timed it on the thread


def test_a_request_with_company_or_a_slow_model_goes_to_the_slots_thread() -> None:
    async def scenario(predictor: Doubler, alone: bool) -> int:
        slot = _quick_slot(predictor, alone)
        for i in range(3):
            await slot.predict([i])
        return threading.get_ident()

    for predictor, alone in ((Doubler(delay=0.0), False), (Doubler(delay=0.01), True)):
        loop_thread = asyncio.run(scenario(predictor, alone))
        assert loop_thread not in predictor.threads and len(predictor.threads) == 1


@pytest.mark.usefixtures("roomy_inline_budget")
def test_nothing_runs_inline_while_the_slots_thread_is_busy() -> None:
    predictor = Doubler(delay=0.0)  # its lock fails a second thread inside predict

    async def scenario(leave: bool) -> list[int]:
        alone = [True]
        slot = _quick_slot(predictor, alone)
        await slot.predict([1])  # timed: quick
        alone[0] = False
        predictor.hold()
        calls = len(predictor.batches)
        busy = asyncio.ensure_future(slot.predict([2]))  # on the slot's thread until released
        await _until(lambda: len(predictor.batches) == calls + 1)  # inside predict now
        if leave:  # its caller leaves: nothing waits for the batch, which still runs
            busy.cancel()
            await _until(busy.done)
            assert busy.cancelled() and slot.pending == 1  # the batch runs on: its item still counts
        alone[0] = True
        last = asyncio.ensure_future(slot.predict([3]))  # inline now would meet the held call inside predict
        await asyncio.sleep(0.01)
        predictor.release()
        return await last

    for leave in (False, True):
        assert asyncio.run(scenario(leave)) == [6]


@pytest.mark.usefixtures("roomy_inline_budget")
def test_an_inline_call_that_fails_fails_its_caller_only() -> None:
    predictor = Doubler(delay=0.0)

    async def scenario() -> tuple[Any, list[int]]:
        slot = _quick_slot(predictor)
        await slot.predict([1])
        failed = await asyncio.gather(slot.predict([-1]), return_exceptions=True)
        return failed[0], await slot.predict([5])

    failed, later = asyncio.run(scenario())
    assert isinstance(failed, ValueError) and later == [10]
    assert predictor.batches == [1, 1, 1] and threading.get_ident() in predictor.threads


class OneManifestStore:
    """Any name fetches the same manifest (the slots' wiring is under test, not the store)."""

    def names(self) -> list[str]:
        return []

    def fetch(self, name: str, ref: str) -> tuple[Path, Manifest]:
        return Path("."), _manifest()


def test_only_plans_that_allow_it_give_their_slots_the_services_alone() -> None:
    from app.model_plans import default_plans

    inline = {plan.slot for plan in default_plans(Settings()) if plan.inline}
    assert inline == {"classifier", "embedder"}  # fixed input sizes; the detector and style grow with the photo
    plans = [
        SlotPlan("classifier", "classifier", lambda *_: Doubler(0.0), inline=True),
        SlotPlan("detector", "detector", lambda *_: Doubler(0.0)),
    ]
    store: Any = OneManifestStore()
    manager = ModelManager(Settings(warmup=False), store, plans, lambda: 10, alone=lambda: True)
    slots = manager._build_role("classifier", "stable") | manager._build_role("detector", "stable")
    assert slots["classifier"].alone() and not slots["detector"].alone()


def test_a_started_batch_counts_against_the_queue_until_it_ends_though_its_caller_left() -> None:
    predictor = Doubler(delay=0.0)

    async def scenario() -> tuple[Any, list[int], int]:
        slot = _slot(predictor, queue=1, batch=1)
        predictor.hold()
        leaving = asyncio.ensure_future(slot.predict([1]))
        await _until(lambda: predictor.batches == [1])  # its batch is running on the slot's thread
        leaving.cancel()
        await _until(leaving.done)
        refused = await asyncio.gather(slot.predict([2]), return_exceptions=True)
        predictor.release()
        await _until(lambda: slot.pending == 0)  # the abandoned batch has ended
        return refused[0], await slot.predict([3]), slot.pending

    refused, later, pending = asyncio.run(scenario())
    assert isinstance(refused, Overloaded)
    assert later == [6] and pending == 0
