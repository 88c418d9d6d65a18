"""Lab 05: the stream guard (reference_impl/guard.py), driven by scripted models.

Each model below misbehaves in one way; the guard must end every stream on time, cleanly,
and stop the model when the stream ends for any reason.
"""

from __future__ import annotations

import asyncio
import time

import pytest

lab05 = pytest.mark.lab("05")
# The Lab Tasks of notebook 05, as its "Lab Task N" headings number them.
lab05_task = {n: pytest.mark.lab("05", task=n) for n in (1, 2)}


class ScriptedModel:
    """Yields `tokens` with `gap` seconds between them, then stops, stalls or runs away."""

    name = "scripted"

    def __init__(self, impl, tokens=3, gap=0.0, first=0.0, then="stop", forever_gap=None):
        self.impl, self.tokens, self.gap, self.first, self.then = impl, tokens, gap, first, then
        self.forever_gap = forever_gap
        self.stopped = False
        self.produced = 0

    async def stream(self, request):
        model = self.impl.model
        try:
            await asyncio.sleep(self.first)
            for index in range(self.tokens):
                if index:
                    await asyncio.sleep(self.gap)
                self.produced += 1
                yield model.TextDelta(f" t{index}")
            if self.then == "stall":
                await asyncio.Event().wait()
            while self.then == "runaway":  # ignores max_tokens entirely
                await asyncio.sleep(self.forever_gap or 0)
                self.produced += 1
                yield model.TextDelta(" more")
            yield model.ModelStop("end_turn", request.prompt_tokens, self.tokens)
        finally:
            self.stopped = True


def limits(impl, **overrides):
    values = {
        "max_tokens": 100,
        "first_token_timeout_seconds": 1.0,
        "idle_timeout_seconds": 1.0,
        "max_stream_seconds": 5.0,
    }
    return impl.settings.StreamLimits(**{**values, **overrides})


def run_guard(impl, model, **limit_overrides):
    """Collect the guard's items; a GatewayError ends the list as its last element."""
    request = impl.model.ModelRequest("q?", "doc.", limit_overrides.get("max_tokens", 100))

    async def collect():
        items, progress = [], impl.guard.Progress()
        stream = impl.guard.guard_stream(
            model,
            request,
            limits(impl, **limit_overrides),
            progress,
            started_at=time.perf_counter(),
        )
        try:
            async for item in stream:
                items.append(item)
        except impl.errors.GatewayError as error:
            items.append(error)
        return items, progress

    return asyncio.run(collect())


def kinds(items):
    return [type(item).__name__ for item in items]


@lab05_task[2]
def test_a_normal_answer_streams_every_token_then_finishes(impl):
    model = ScriptedModel(impl, tokens=3)
    items, progress = run_guard(impl, model)
    assert kinds(items) == ["Delta", "Delta", "Delta", "Finished"]
    assert [d.index for d in items[:3]] == [0, 1, 2]
    assert items[-1].stop_reason == "end_turn" and items[-1].output_tokens == 3
    assert progress.generated == progress.delivered == 3 and model.stopped


@lab05_task[1]
def test_no_first_token_in_time_is_a_model_timeout(impl):
    model = ScriptedModel(impl, first=5.0)
    started = time.monotonic()
    items, _ = run_guard(impl, model, first_token_timeout_seconds=0.1)
    assert kinds(items) == ["GatewayError"] and items[0].code == "model_timeout"
    assert time.monotonic() - started < 5.0 and model.stopped


@lab05_task[1]
def test_a_model_that_stalls_mid_answer_gets_an_idle_timeout(impl):
    model = ScriptedModel(impl, tokens=2, then="stall")
    items, _ = run_guard(impl, model, idle_timeout_seconds=0.1)
    assert kinds(items) == ["Delta", "Delta", "GatewayError"]
    assert items[-1].code == "idle_timeout" and items[-1].status == 504
    assert model.stopped, "the stalled model task must be cancelled"


@lab05_task[2]
def test_a_runaway_model_is_cut_at_max_tokens_by_the_edge(impl):
    model = ScriptedModel(impl, tokens=1, then="runaway")
    items, progress = run_guard(impl, model, max_tokens=5)
    assert kinds(items) == ["Delta"] * 5 + ["Finished"]
    assert items[-1].stop_reason == "max_tokens" and items[-1].output_tokens == 5
    assert model.stopped and model.produced <= 7


@lab05_task[1]
def test_a_steady_but_endless_stream_is_cut_at_the_maximum_duration(impl):
    model = ScriptedModel(impl, tokens=1, then="runaway", forever_gap=0.02)
    items, _ = run_guard(impl, model, max_stream_seconds=0.3, max_tokens=10_000)
    assert items[-1].code == "stream_timeout" and 1 < len(items) < 10_000
    assert set(kinds(items[:-1])) == {"Delta"} and model.stopped


@lab05_task[2]
def test_slow_but_steady_tokens_within_the_idle_timeout_are_not_cut(impl):
    model = ScriptedModel(impl, tokens=4, gap=0.1)
    items, progress = run_guard(
        impl, model, idle_timeout_seconds=0.5, first_token_timeout_seconds=0.5
    )
    assert kinds(items) == ["Delta"] * 4 + ["Finished"]
    assert items[-1].stop_reason == "end_turn" and progress.delivered == 4


@lab05_task[2]
def test_closing_the_stream_cancels_a_stalled_model_at_once(impl):
    model = ScriptedModel(impl, tokens=1, then="stall")
    request = impl.model.ModelRequest("q?", "doc.", 100)

    async def scenario():
        stream = impl.guard.guard_stream(
            model, request, limits(impl), impl.guard.Progress(), started_at=time.perf_counter()
        )
        first = await anext(stream)
        await stream.aclose()  # what the wire layer does when the client disconnects
        return first

    first = asyncio.run(scenario())
    assert type(first).__name__ == "Delta"
    assert model.stopped, "aclose() must cancel the model task before it returns"


@lab05_task[1]
def test_an_idle_timeout_shorter_than_the_first_token_timeout_is_kept(impl):
    model = ScriptedModel(impl, tokens=2, then="stall")
    started = time.monotonic()
    items, _ = run_guard(impl, model, first_token_timeout_seconds=30.0, idle_timeout_seconds=0.1)
    assert items[-1].code == "idle_timeout"
    assert time.monotonic() - started < 30.0, "the idle deadline, not the first-token one, ends it"


@lab05
def test_a_cancel_from_outside_is_passed_on_not_taken_for_a_deadline(impl):
    # The client left (or the server is stopping) while the model stalls: the guard's task is
    # cancelled from outside. That cancel is not ours: it must propagate, not become a timeout,
    # and the model must still be closed.
    model = ScriptedModel(impl, tokens=1, then="stall")
    request = impl.model.ModelRequest("q?", "doc.", 100)
    progress = impl.guard.Progress()

    async def consume():
        stream = impl.guard.guard_stream(
            model, request, limits(impl), progress, started_at=time.perf_counter()
        )
        try:
            async for _ in stream:
                pass
        finally:
            await stream.aclose()

    async def scenario():
        task = asyncio.create_task(consume())
        async with asyncio.timeout(10):
            while progress.delivered < 1:  # wait until the model stalls after its token
                await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "ended without the cancel"

    assert asyncio.run(scenario()) == "cancelled"
    assert progress.error is None, "a client's cancel is not a gateway error"
    assert model.stopped, "the model is closed however the stream ends"


class FailingModel:
    """Sends one token, then fails as no GatewayError, or ends without a stop reason."""

    name = "failing"

    def __init__(self, impl, how):
        self.impl, self.how, self.stopped = impl, how, False

    async def stream(self, request):
        try:
            yield self.impl.model.TextDelta(" t0")
            if self.how == "raises":
                raise RuntimeError("the model broke")
        finally:
            self.stopped = True


@lab05
@pytest.mark.parametrize("how", ["raises", "ends_without_stop"])
def test_a_model_that_fails_ends_with_a_structured_model_error(impl, how):
    model = FailingModel(impl, how)
    items, progress = run_guard(impl, model)
    assert kinds(items) == ["Delta", "GatewayError"]
    assert items[-1].code == "model_error"
    assert progress.error is items[-1]
    assert model.stopped
