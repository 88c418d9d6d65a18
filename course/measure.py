"""Measurements the notebooks make against a running gateway, so their claims are numbers.

Every helper talks to the gateway over real HTTP on loopback, with a real SSE client
(`httpx-sse`), and reads the gateway's own meters from `GET /metrics`:

- `time_to_first_token` / `time_full_response`: what a waiting user feels, streamed or not;
- `percentiles`: p50/p90/p99 of a few timings;
- `read_stream`: one answer as raw SSE text and parsed events (or the problem before it);
- `read_stream_timed`: the same, with the time each line arrived (`: ping` comments included);
- `runaway_cost`: tokens and dollars a model that ignores max_tokens costs, per stream;
- `disconnect_mid_stream`: does generation stop when the reader leaves?
- `hold_streams`: admit several streams at once and see which limits refuse them;
- `burst`: many requests in a row, each on a new connection, against a rate limit;
- `retry_storm`: many clients against a rate limit, retrying at once or honouring Retry-After;
- `resume_after_drops`: an answer whose connection drops, resumed with `Last-Event-ID`.

Waiting for the gateway is done on a condition with a deadline (a meter reaching a value),
never on a fixed sleep.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import httpx_sse
from prometheus_client.parser import text_string_to_metric_families

MODEL = "fake-docqa"
GENERATED = "gateway_model_tokens_generated_total"  # the cost meter, in tokens
COST = "gateway_model_cost_dollars_total"  # the same, in dollars at the configured prices
STREAMS_ENDED = "gateway_stream_duration_seconds_count"  # grows last when a stream is settled
TERMINAL = frozenset({"end", "error"})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _problem(response: httpx.Response) -> dict[str, Any] | None:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


# --- the gateway's meters -----------------------------------------------------------------------


def metric(base_url: str, name: str, **labels: str) -> float:
    """One sample from the gateway's `GET /metrics` (0 when it was never set)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def wait_for_metric(
    base_url: str,
    name: str,
    done: Callable[[float], bool],
    timeout: float = 10.0,
    **labels: str,
) -> float:
    """Poll a meter until `done(value)` holds; return the value. Raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = metric(base_url, name, **labels)
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}{labels} stayed at {value} for {timeout} s")
        time.sleep(0.005)


def _wait_until_settled(base_url: str, streams_ended_before: float, count: int = 1) -> None:
    # The gateway bills a stream (cost meter, token budget, slot) in one `finally` that records
    # the stream's duration last; once that count has grown, every meter of the stream is final.
    wait_for_metric(base_url, STREAMS_ENDED, lambda v: v >= streams_ended_before + count)


# --- one answer, timed --------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """When a user saw what, in seconds from sending the request."""

    first_byte_s: float  # the response headers arrived
    first_token_s: float | None  # the first words were on screen (None: no answer)
    total_s: float  # the answer was complete
    tokens: int  # output tokens received
    status: int = 200
    # When each token reached the client, in seconds from sending the request: spread out
    # when streamed, all equal to total_s when the answer came in one body.
    token_times_s: tuple[float, ...] = ()


def time_to_first_token(
    base_url: str, key: str, body: dict[str, Any], path: str = "/v1/ask/stream"
) -> Timing:
    """Stream one answer and time it as a user sees it: the first `delta` is the first token."""
    first_token, arrivals = None, []
    with httpx.Client(timeout=60, headers=_headers(key)) as client:
        started = time.perf_counter()
        with httpx_sse.connect_sse(client, "POST", f"{base_url}{path}", json=body) as source:
            first_byte = time.perf_counter() - started
            status = source.response.status_code
            if status == 200:
                for event in source.iter_sse():
                    if event.event == "delta":
                        arrivals.append(time.perf_counter() - started)
                        if first_token is None:
                            first_token = arrivals[0]
                    elif event.event in TERMINAL:
                        break
            else:
                source.response.read()
        total = time.perf_counter() - started
    return Timing(first_byte, first_token, total, len(arrivals), status, tuple(arrivals))


def time_full_response(
    base_url: str, key: str, body: dict[str, Any], path: str = "/v1/ask"
) -> Timing:
    """Ask for the whole answer in one body: the user sees the first token when it all arrives."""
    with httpx.Client(timeout=60, headers=_headers(key)) as client:
        started = time.perf_counter()
        with client.stream("POST", f"{base_url}{path}", json=body) as response:
            first_byte = time.perf_counter() - started
            response.read()
        total = time.perf_counter() - started
    if response.status_code != 200:
        return Timing(first_byte, None, total, 0, response.status_code)
    tokens = response.json()["usage"]["output_tokens"]
    return Timing(first_byte, total, total, tokens, response.status_code, (total,) * tokens)


def in_parallel(count: int, function: Callable[..., Any], *args: Any, **kwargs: Any) -> list:
    """Call `function(*args, **kwargs)` `count` times at once (one thread each), like `count`
    users pressing Ask together; return the results in order."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(function, *args, **kwargs) for _ in range(count)]
        return [future.result() for future in futures]


def percentiles(values: Iterable[float], points: Sequence[float] = (50, 90, 99)) -> dict:
    """The given percentiles of `values`, interpolating linearly between the nearest ranks
    (numpy's default): {50: ..., 90: ..., 99: ...}."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentiles of nothing: give at least one value")
    result = {}
    for point in points:
        if not 0 <= point <= 100:
            raise ValueError(f"a percentile is between 0 and 100, not {point}")
        rank = (len(ordered) - 1) * point / 100
        low, high = math.floor(rank), math.ceil(rank)
        result[point] = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return result


# --- one answer, read whole ---------------------------------------------------------------------


@dataclass(frozen=True)
class StreamRead:
    """One streaming request: the raw bytes, the parsed events, or the problem before them."""

    status: int
    headers: httpx.Headers
    raw: str
    events: list[dict[str, Any]] = field(default_factory=list)  # {"event", "data", "id"}
    problem: dict[str, Any] | None = None  # the HTTP error body when status is not 200
    seconds: float = 0.0

    @property
    def names(self) -> list[str]:
        return [event["event"] for event in self.events]

    def data(self, index: int) -> Any:
        return json.loads(self.events[index]["data"])

    @property
    def summary(self) -> str:
        """The stream in one line: `200: start, 3 x delta, error idle_timeout (504)`."""
        if self.status != 200:
            return f"{self.status}: no stream, problem {(self.problem or {}).get('code')}"
        parts, deltas = [], self.names.count("delta")
        parts.append(self.names[0] if self.names else "(no events)")
        if deltas:
            parts.append(f"{deltas} x delta")
        if self.names and self.names[-1] == "error":
            problem = self.data(-1)
            parts.append(f"error {problem['code']} ({problem['status']})")
        elif self.names and self.names[-1] == "end":
            parts.append(f"end {self.data(-1)['stop_reason']}")
        return f"{self.status}: " + ", ".join(parts)


def read_stream(
    base_url: str, key: str | None, body: Any, path: str = "/v1/ask/stream"
) -> StreamRead:
    """POST a streaming request, read it to the end, and parse it with a real SSE client."""
    with httpx.Client(timeout=60, headers=_headers(key)) as client:
        started = time.perf_counter()
        with client.stream("POST", f"{base_url}{path}", json=body) as response:
            raw = response.read()
        seconds = time.perf_counter() - started
    text = raw.decode("utf-8")
    if response.status_code != 200:
        return StreamRead(
            response.status_code, response.headers, text, [], _problem(response), seconds
        )
    replay = httpx.Response(200, headers=response.headers, content=raw)
    events = [
        {"event": e.event, "data": e.data, "id": e.id or None}
        for e in httpx_sse.EventSource(replay).iter_sse()
    ]
    return StreamRead(200, response.headers, text, events, None, seconds)


@dataclass(frozen=True)
class TimedStream:
    """One streaming request read line by line, each line stamped with when it arrived."""

    read: StreamRead  # the same answer, parsed as `read_stream` parses it
    lines: tuple[tuple[float, str], ...]  # (seconds from sending, line): blank lines included

    @property
    def token_times_s(self) -> tuple[float, ...]:
        """When each `delta` event was complete (its closing blank line arrived)."""
        return self._dispatched("delta")

    @property
    def ping_times_s(self) -> tuple[float, ...]:
        """When each `: ping` comment arrived: traffic for proxies, no event for the client."""
        return tuple(at for at, line in self.lines if line.startswith(":") and "ping" in line)

    def _dispatched(self, name: str) -> tuple[float, ...]:
        times, event, has_data = [], "message", False
        for at, line in self.lines:
            if not line:  # a blank line dispatches the event, if it had data
                if has_data and event == name:
                    times.append(at)
                event, has_data = "message", False
            elif line.startswith("event:"):
                event = line[len("event:") :].strip()
            elif line.startswith("data"):
                has_data = True
        return tuple(times)


def read_stream_timed(
    base_url: str, key: str | None, body: Any, path: str = "/v1/ask/stream"
) -> TimedStream:
    """POST a streaming request and stamp every SSE line with when it reached the client.

    A parsed SSE client drops comments, so the `: ping` keep-alives are only visible here, at
    the line level. Each line is stamped when its line break arrives.
    """
    lines: list[tuple[float, str]] = []
    with httpx.Client(timeout=60, headers=_headers(key)) as client:
        started = time.perf_counter()
        with client.stream("POST", f"{base_url}{path}", json=body) as response:
            if response.status_code == 200:
                for line in response.iter_lines():
                    lines.append((time.perf_counter() - started, line))
            else:
                response.read()
        seconds = time.perf_counter() - started
    if response.status_code != 200:
        text = response.text
        read = StreamRead(
            response.status_code, response.headers, text, [], _problem(response), seconds
        )
        return TimedStream(read, ())
    raw = "".join(f"{line}\n" for _, line in lines)
    replay = httpx.Response(200, headers=response.headers, content=raw.encode("utf-8"))
    events = [
        {"event": e.event, "data": e.data, "id": e.id or None}
        for e in httpx_sse.EventSource(replay).iter_sse()
    ]
    return TimedStream(StreamRead(200, response.headers, raw, events, None, seconds), tuple(lines))


# --- what a runaway costs -----------------------------------------------------------------------


@dataclass(frozen=True)
class RunawayCost:
    """One stream from a model that ignores max_tokens, and what the cost meter charged for it."""

    max_tokens: int
    ending: str  # the end event's stop_reason, or the error event's code
    seconds: float
    tokens_delivered: int  # delta events the client received
    tokens_generated: int  # what the model produced (the cost meter)
    dollars: float  # input + output at the gateway's prices
    token_times_s: tuple[float, ...] = ()  # when each token arrived, seconds from sending


def runaway_cost(
    base_url: str, key: str, body: dict[str, Any], max_tokens: int, model: str = MODEL
) -> RunawayCost:
    """Stream `body` with `max_tokens` and read what the meters charged for this one stream.

    Start the gateway with `fake_behavior="runaway"`: the model then never stops by itself,
    so only the gateway's limits (max_tokens, max_stream_seconds) end the stream.
    """
    generated, dollars = metric(base_url, GENERATED, model=model), metric(base_url, COST)
    ended = metric(base_url, STREAMS_ENDED)
    timed = read_stream_timed(base_url, key, {**body, "max_tokens": max_tokens})
    result = timed.read
    if result.status != 200:
        problem = result.problem or {}
        raise ValueError(f"the stream was refused: {result.status} {problem.get('code')}")
    _wait_until_settled(base_url, ended)
    last = result.data(-1)
    return RunawayCost(
        max_tokens=max_tokens,
        ending=last.get("stop_reason") or last.get("code"),
        seconds=result.seconds,
        tokens_delivered=result.names.count("delta"),
        tokens_generated=int(metric(base_url, GENERATED, model=model) - generated),
        dollars=metric(base_url, COST) - dollars,
        token_times_s=timed.token_times_s,
    )


# --- a reader who leaves ------------------------------------------------------------------------


@dataclass(frozen=True)
class Disconnect:
    """The cost meter around a client that closed its stream after `tokens_read` tokens."""

    tokens_read: int
    generated_at_release: int  # tokens generated when the gateway had released the stream
    generated_after_watch: int  # the same meter `watch_seconds` later
    watch_seconds: float
    release_seconds: float  # from closing the connection to the gateway's release


def disconnect_mid_stream(
    base_url: str,
    key: str,
    body: dict[str, Any],
    after_tokens: int,
    watch_seconds: float = 0.5,
    model: str = MODEL,
) -> Disconnect:
    """Read `after_tokens` tokens, close the connection, then watch the cost meter.

    If the gateway stops the model when the reader leaves, the meter stands still after the
    release; if it does not, it keeps rising at the model's speed for nobody.
    """
    generated, ended = metric(base_url, GENERATED, model=model), metric(base_url, STREAMS_ENDED)
    read = 0
    with httpx.Client(timeout=60, headers=_headers(key)) as client:
        url = f"{base_url}/v1/ask/stream"
        with httpx_sse.connect_sse(client, "POST", url, json=body) as source:
            if source.response.status_code != 200:
                source.response.read()
                raise ValueError(f"the stream was refused: {source.response.status_code}")
            for event in source.iter_sse():
                read += event.event == "delta"
                if read >= after_tokens or event.event in TERMINAL:
                    break
        closed = time.perf_counter()  # leaving the blocks closed the connection mid-stream
    _wait_until_settled(base_url, ended)
    released = time.perf_counter()
    at_release = metric(base_url, GENERATED, model=model) - generated
    time.sleep(watch_seconds)  # the measurement itself: does the meter move while we watch?
    after_watch = metric(base_url, GENERATED, model=model) - generated
    return Disconnect(read, int(at_release), int(after_watch), watch_seconds, released - closed)


# --- admission: several streams at once ---------------------------------------------------------


@dataclass(frozen=True)
class Admitted:
    """How the gateway answered one stream request: 200, or a problem with its code."""

    status: int
    code: str | None = None
    retry_after: str | None = None  # the Retry-After header
    detail: str | None = None


def hold_streams(base_url: str, key: str, body: dict[str, Any], count: int) -> list[Admitted]:
    """Open `count` streams one after another, each kept open (its `start` event read) while
    the next is asked for, then close them all and wait until the gateway has settled them."""
    ended = metric(base_url, STREAMS_ENDED)
    answers, readers = [], []
    with httpx.Client(timeout=60, headers=_headers(key)) as client, ExitStack() as still_open:
        for _ in range(count):
            stream = client.stream("POST", f"{base_url}/v1/ask/stream", json=body)
            response = still_open.enter_context(stream)
            if response.status_code == 200:
                events = httpx_sse.EventSource(response).iter_sse()
                next(events)  # `start`: admitted, and holding its slot and its tokens
                readers.append(events)  # keep it: dropping the reader closes the connection
                answers.append(Admitted(200))
                continue
            response.read()
            problem = _problem(response) or {}
            retry_after = response.headers.get("retry-after")
            answers.append(
                Admitted(
                    response.status_code, problem.get("code"), retry_after, problem.get("detail")
                )
            )
    admitted = sum(answer.status == 200 for answer in answers)
    if admitted:
        _wait_until_settled(base_url, ended, admitted)
    return answers


# --- a burst, each request on a new connection -------------------------------------------------


@dataclass(frozen=True)
class Burst:
    """How a burst fared: each request's status, and when its answer came (seconds)."""

    statuses: list[int]
    answered_s: list[float]

    @property
    def accepted(self) -> int:
        return sum(status == 200 for status in self.statuses)

    @property
    def refused(self) -> int:
        return sum(status == 429 for status in self.statuses)


def burst(base_url: str, key: str, sent: int, path: str = "/v1/documents") -> Burst:
    """Send `sent` requests one after another, each on a new connection, so that a gateway of
    several workers hands them out among its workers as the kernel decides. Anything but 200
    or 429 is an error: the burst measures the rate limit, nothing else."""
    statuses, answered = [], []
    started = time.perf_counter()
    for _ in range(sent):
        response = httpx.get(f"{base_url}{path}", headers=_headers(key), timeout=30)
        if response.status_code not in (200, 429):
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:200]}")
        statuses.append(response.status_code)
        answered.append(time.perf_counter() - started)
    return Burst(statuses, answered)


# --- retries: a storm, or patience --------------------------------------------------------------


@dataclass(frozen=True)
class RetryStorm:
    """What `clients` clients, each wanting one answer, cost the gateway."""

    clients: int
    honour_retry_after: bool
    attempts: int  # requests sent, first tries and retries
    refused: int  # 429 answers among them
    successes: int  # clients that got their answer
    gave_up: int  # clients that stopped without one (deadline, attempt cap, not retryable)
    seconds: float  # until the last client finished
    sent_s: tuple[float, ...] = ()  # when each request was sent, seconds from the start
    # A well-behaved client with its own key, asking now and then during the storm:
    # (seconds from the start when it asked, seconds it waited for the answer).
    bystander: tuple[tuple[float, float], ...] = ()

    @property
    def load_factor(self) -> float:
        """Requests sent per answer delivered: 1.0 is no waste."""
        return self.attempts / self.successes if self.successes else math.inf


def retry_storm(
    base_url: str,
    key: str,
    *,
    clients: int = 20,
    seconds: float = 5.0,
    honour_retry_after: bool,
    path: str = "/v1/documents",
    body: dict[str, Any] | None = None,
    max_attempts: int = 6,
    base_delay: float = 0.25,
    max_delay: float = 2.0,
    seed: int | None = None,
    bystander_key: str | None = None,
    bystander_every: float = 0.1,
) -> RetryStorm:
    """`clients` clients start together, each wanting one 200 from `path` (GET, or POST `body`).

    - `honour_retry_after=False` is the trap "the UI retries until success": on any error, send
      again at once, until success or the deadline.
    - `honour_retry_after=True` does what the problem object says: give up on `retryable: false`;
      else wait Retry-After plus capped exponential backoff with full jitter, at most
      `max_attempts` tries, and give up rather than wait past the deadline.

    With `bystander_key`, one more client, under that key (so its own rate limit), sends the
    same request every `bystander_every` seconds while the storm lasts and records how long each
    answer took: the load a storm takes from everyone else, measured.

    Bounded: at most 200 clients, 60 seconds, and loopback addresses only.
    """
    if urlsplit(base_url).hostname not in LOOPBACK:
        raise ValueError("retry_storm generates load: point it at a gateway on loopback only")
    if not 1 <= clients <= 200 or not 0 < seconds <= 60:
        raise ValueError("keep the storm small: 1-200 clients for at most 60 seconds")
    # The storm's clock starts when every client is ready, not when the threads were asked to
    # start: on a busy machine starting them can take longer than a short storm lasts.
    clock: dict[str, float] = {}
    storm_started, storm_over = threading.Event(), threading.Event()

    def press_together() -> None:
        clock["started"] = time.monotonic()
        clock["deadline"] = clock["started"] + seconds
        storm_started.set()

    go = threading.Barrier(clients, action=press_together)
    sent: list[float] = []  # list.append is atomic: the clients' threads share it
    bystander: list[tuple[float, float]] = []

    def send(http: httpx.Client, target: str) -> httpx.Response:
        if body is None:
            return http.get(target)
        return http.post(target, json=body)

    def watch() -> None:
        with httpx.Client(base_url=base_url, headers=_headers(bystander_key), timeout=10) as http:
            storm_started.wait(30)
            while not storm_over.is_set():
                asked = time.monotonic()
                send(http, path)
                bystander.append((asked - clock["started"], time.monotonic() - asked))
                storm_over.wait(bystander_every)

    def one_client(number: int) -> tuple[int, int, bool]:
        rng = random.Random(None if seed is None else seed + number)
        attempts = refused = 0
        with httpx.Client(base_url=base_url, headers=_headers(key), timeout=10) as http:
            go.wait()  # everyone presses the button at the same moment
            started, deadline = clock["started"], clock["deadline"]
            while time.monotonic() < deadline:
                if honour_retry_after and attempts >= max_attempts:
                    break
                sent.append(time.monotonic() - started)
                response = send(http, path)
                attempts += 1
                if response.status_code == 200:
                    return attempts, refused, True
                refused += response.status_code == 429
                if not honour_retry_after:
                    continue  # the trap: hammer again at once, whatever the error said
                problem = _problem(response) or {}
                if not problem.get("retryable", False):
                    break  # 400, 401, 413...: the same request can never succeed
                retry_after = float(
                    response.headers.get("retry-after") or problem.get("retry_after_seconds") or 0
                )
                backoff = min(max_delay, base_delay * 2 ** (attempts - 1))
                wait = retry_after + rng.uniform(0, backoff)  # never sooner than Retry-After
                if time.monotonic() + wait >= deadline:
                    break
                time.sleep(wait)
        return attempts, refused, False

    watcher = threading.Thread(target=watch, daemon=True) if bystander_key else None
    if watcher:
        watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            outcomes = list(pool.map(one_client, range(clients)))
    finally:
        storm_over.set()
        if watcher:
            watcher.join(timeout=15)
    successes = sum(ok for _, _, ok in outcomes)
    return RetryStorm(
        clients=clients,
        honour_retry_after=honour_retry_after,
        attempts=sum(attempts for attempts, _, _ in outcomes),
        refused=sum(refused for _, refused, _ in outcomes),
        successes=successes,
        gave_up=clients - successes,
        seconds=time.monotonic() - clock["started"],
        sent_s=tuple(sorted(sent)),
        bystander=tuple(bystander),
    )


# --- an impatient client: a timeout, then the same request again --------------------------------


MODEL_CALLS = "gateway_model_requests_total"  # requests that reached the model


@dataclass(frozen=True)
class ImpatientClient:
    """One user wanting one buffered answer, behind a client timeout that retries."""

    client_timeout_s: float
    attempts: int  # requests sent
    timed_out: int  # attempts the client gave up on
    answered: bool  # did any attempt bring the answer back in time?
    seconds: float  # from the first request until the client stopped
    model_calls: int  # requests that reached the model (the gateway's meter)
    tokens_generated: int  # output tokens the model produced for them (the cost meter)
    dollars: float  # the same at the gateway's prices, input tokens included


def impatient_client(
    base_url: str,
    key: str,
    body: dict[str, Any],
    *,
    client_timeout_s: float,
    max_attempts: int = 3,
    path: str = "/v1/ask",
    model: str = MODEL,
) -> ImpatientClient:
    """Ask for a whole answer with a read timeout; on a timeout, ask again, up to `max_attempts`.

    This is the chain behind "users who wait in silence click again": a timeout shorter than
    the answer takes turns one question into several model calls, each paying its prompt. This
    gateway stops its model when a client leaves, so what each abandoned answer generated is
    what the meter shows; AWS does not document that closing a Bedrock stream stops generation
    or billing. The meters are read once every attempt the gateway admitted has been settled.
    """
    if urlsplit(base_url).hostname not in LOOPBACK:
        raise ValueError("impatient_client sends repeated requests: use a gateway on loopback")
    calls, generated = (
        metric(base_url, MODEL_CALLS, model=model),
        metric(base_url, GENERATED, model=model),
    )
    dollars, ended = metric(base_url, COST), metric(base_url, STREAMS_ENDED)
    attempts = timed_out = 0
    answered = False
    started = time.perf_counter()
    timeout = httpx.Timeout(60, read=client_timeout_s)
    with httpx.Client(timeout=timeout, headers=_headers(key)) as client:
        while attempts < max_attempts and not answered:
            attempts += 1
            try:
                response = client.post(f"{base_url}{path}", json=body)
            except httpx.ReadTimeout:
                timed_out += 1
                continue
            answered = response.status_code == 200
            if not answered:
                break  # a refusal is not a reason to ask again at once (see retry_storm)
    seconds = time.perf_counter() - started
    admitted = int(metric(base_url, MODEL_CALLS, model=model) - calls)
    if admitted:
        _wait_until_settled(base_url, ended, admitted)
    return ImpatientClient(
        client_timeout_s=client_timeout_s,
        attempts=attempts,
        timed_out=timed_out,
        answered=answered,
        seconds=seconds,
        model_calls=admitted,
        tokens_generated=int(metric(base_url, GENERATED, model=model) - generated),
        dollars=metric(base_url, COST) - dollars,
    )


# --- a dropped stream, resumed: the retry that costs nothing ------------------------------------


@dataclass(frozen=True)
class Resumed:
    """One streamed answer read over several connections, each but the last dropped."""

    connections: int  # the POST, then one GET per resume
    events: int  # events received over all of them
    terminal_events: int  # `end` or `error` events among them: 1 when nothing was lost
    ending: str  # the terminal event's stop_reason, or its error code
    text: str  # the answer, put together from every connection's deltas
    model_calls: int  # requests that reached the model (the gateway's meter)
    tokens_generated: int  # output tokens the model produced (the cost meter)
    dollars: float  # the same at the gateway's prices, input tokens included


def resume_after_drops(
    base_url: str,
    key: str,
    body: dict[str, Any],
    *,
    drops: int = 1,
    tokens_per_connection: int = 5,
    model: str = MODEL,
) -> Resumed:
    """Stream an answer, drop the connection after `tokens_per_connection` tokens, and resume
    it with `GET /v1/ask/stream/{request_id}` and `Last-Event-ID`, `drops` times; the last
    connection reads to the end. A resume continues the same answer: it is not a new request
    to the model, which the meters show."""
    calls, generated = (
        metric(base_url, MODEL_CALLS, model=model),
        metric(base_url, GENERATED, model=model),
    )
    dollars, ended = metric(base_url, COST), metric(base_url, STREAMS_ENDED)
    seen: list[httpx_sse.ServerSentEvent] = []
    request_id = None
    with httpx.Client(base_url=base_url, timeout=60, headers=_headers(key)) as client:
        for connection in range(drops + 1):
            if request_id is None:
                opened = httpx_sse.connect_sse(client, "POST", "/v1/ask/stream", json=body)
            else:
                last = {"Last-Event-ID": seen[-1].id}
                url = f"/v1/ask/stream/{request_id}"
                opened = httpx_sse.connect_sse(client, "GET", url, headers=last)
            with opened as source:
                if source.response.status_code != 200:
                    source.response.read()
                    problem = _problem(source.response) or {}
                    raise ValueError(
                        f"refused: {source.response.status_code} {problem.get('code')}"
                    )
                tokens = 0
                for event in source.iter_sse():
                    seen.append(event)
                    if event.event == "start":
                        request_id = json.loads(event.data)["request_id"]
                    tokens += event.event == "delta"
                    if event.event in TERMINAL:
                        break
                    if connection < drops and tokens >= tokens_per_connection:
                        break  # leaving the block drops the connection mid-answer
            if seen and seen[-1].event in TERMINAL:
                break
    _wait_until_settled(base_url, ended)
    last = json.loads(seen[-1].data) if seen else {}
    return Resumed(
        connections=connection + 1,
        events=len(seen),
        terminal_events=sum(event.event in TERMINAL for event in seen),
        ending=last.get("stop_reason") or last.get("code") or "",
        text="".join(json.loads(e.data)["text"] for e in seen if e.event == "delta"),
        model_calls=int(metric(base_url, MODEL_CALLS, model=model) - calls),
        tokens_generated=int(metric(base_url, GENERATED, model=model) - generated),
        dollars=metric(base_url, COST) - dollars,
    )
