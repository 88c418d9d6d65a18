"""Models the gateway can stream from, behind one small interface.

A model (`Model`) has a `name` and an async generator `stream(request)` that yields
`TextDelta`s and finally one `ModelStop`, with the model's own token usage when it reports one.
Errors are raised as `GatewayError`s from the one catalogue, so the edge treats every model the
same way. `FakeModel` (the default) is offline and deterministic; `bedrock.BedrockModel` is
Amazon Bedrock. `gateway.build_model` picks one from the settings.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from .documents import document_tokens
from .errors import GatewayError
from .settings import Settings
from .tokenizer import TOKEN, count_tokens


@dataclass(frozen=True)
class Turn:
    """One earlier question and answer of a conversation, and its size in prompt tokens."""

    question: str
    answer: str
    tokens: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # Counted once, here: the prompt of every follow-up and the chat's history budget
        # both read it.
        object.__setattr__(self, "tokens", count_tokens(self.question) + count_tokens(self.answer))


@dataclass(frozen=True)
class ModelRequest:
    question: str
    document: str
    max_tokens: int
    history: tuple[Turn, ...] = field(default=())

    @cached_property  # read by the edge, the admission and the guard: counted once
    def prompt_tokens(self) -> int:
        earlier = sum(turn.tokens for turn in self.history)
        return count_tokens(self.question) + document_tokens(self.document) + earlier


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ModelStop:
    """The end of an answer, with the model's own token usage when it reports one (None
    otherwise); a reported usage is what the stream is billed."""

    stop_reason: str
    input_tokens: int | None = None
    output_tokens: int | None = None


ModelEvent = TextDelta | ModelStop


class Model(Protocol):
    """What the gateway streams from."""

    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]: ...


STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it its of on or the this to "
    "was what when where which who why will with you your".split()
)
SENTENCE = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"[a-z0-9$@]+")


def words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in STOP_WORDS and len(w) > 1}


def answer_from_document(question: str, document: str, history: tuple[Turn, ...] = ()) -> str:
    """The most relevant sentences of the document, in document order (at most three).

    Words of the previous question count too, so a follow-up such as "and how long can it
    last?" still finds sentences about the subject asked about before.
    """
    sentences = [s.strip() for s in SENTENCE.split(document) if s.strip()]
    wanted = words(question)
    if history:
        wanted |= words(history[-1].question)
    scored = [(len(wanted & words(sentence)), index) for index, sentence in enumerate(sentences)]
    best = sorted((pair for pair in scored if pair[0] > 0), key=lambda p: (-p[0], p[1]))[:3]
    if not best:
        return "The document does not answer that question."
    return " ".join(sentences[index] for _, index in sorted(best, key=lambda p: p[1]))


class FakeModel:
    """Deterministic document Q&A, streamed token by token at a configurable speed.

    `GATEWAY_FAKE_BEHAVIOR` shows every failure the edge limits exist for:
    - normal: answers and stops (end_turn), or stops at max_tokens like a real model;
    - runaway: ignores max_tokens and never stops (only the edge can end it);
    - stall: sends three tokens, then goes silent forever;
    - fail_midstream: fails after five tokens;
    - throttled: refuses before the first token, as a throttled model endpoint does.
    """

    name = "fake-docqa"

    def __init__(self, settings: Settings) -> None:
        self.first_token_seconds = settings.fake_first_token_seconds
        self.set_behavior(settings.fake_behavior, settings.fake_tokens_per_second)

    def set_behavior(self, behavior: str, tokens_per_second: float) -> None:
        """Change how later answers behave (the demo page's presenter panel); an answer already
        streaming keeps the behaviour it started with."""
        self.behavior = behavior
        self.tokens_per_second = tokens_per_second
        self.interval = 1.0 / tokens_per_second

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        loop = asyncio.get_running_loop()
        behavior, interval = self.behavior, self.interval
        await asyncio.sleep(self.first_token_seconds)
        if behavior == "throttled":
            raise GatewayError(
                "rate_limited", "The model is throttling requests.", retry_after_seconds=1.0
            )
        answer = answer_from_document(request.question, request.document, request.history)
        # Found one at a time, as they are sent, from a position: a waiting answer holds no
        # list of its tokens, nor a regex iterator (1.2 KiB of every idle stream, 2026-11-29).
        position = 0
        start = loop.time()
        emitted = 0
        while True:
            found = TOKEN.search(answer, position)
            if found is None:
                if behavior != "runaway" or position == 0:
                    break
                position = 0  # a runaway model starts over, forever
                continue
            token, position, found = found.group(), found.end(), None
            if emitted >= request.max_tokens and behavior != "runaway":
                yield ModelStop("max_tokens", request.prompt_tokens, emitted)
                return
            if behavior == "stall" and emitted == 3:
                await asyncio.Event().wait()  # silent forever: only a timeout or cancel ends it
            if behavior == "fail_midstream" and emitted == 5:
                raise GatewayError("model_error", "The model stream failed.")
            yield TextDelta(token)
            emitted += 1
            # An absolute schedule keeps the pace exact however long the consumer took.
            await until(loop, start + emitted * interval)
        yield ModelStop("end_turn", request.prompt_tokens, emitted)


async def until(loop: asyncio.AbstractEventLoop, due: float) -> None:
    """Wait until the loop's clock reads `due` (at once, for a moment, if it has): what
    asyncio.sleep does, minus its own coroutine and callback, since the fake model waits once per
    token and its cost lands in every figure measured with it."""
    if due <= loop.time():
        await asyncio.sleep(0)
        return
    waiting = loop.create_future()
    timer = loop.call_at(due, wake, waiting)
    try:
        await waiting
    finally:
        timer.cancel()


def wake(waiting: asyncio.Future) -> None:
    if not waiting.done():  # it may have been cancelled since (the stream was stopped)
        waiting.set_result(None)
