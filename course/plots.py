"""The course's figures: each function takes what a notebook measured and returns one Figure.

Inputs are plain data (arrival times in seconds, counts, dollars), so a figure shows exactly what
that run measured and the functions are tested without a gateway. Every figure is titled and
labelled, and drawn on its own opaque light card with the Okabe-Ito colour-blind-safe palette:
an opaque card reads the same in JupyterLab's light and dark themes, where a transparent one
would put dark text on a dark page.

Figures are made with `matplotlib.figure.Figure`, not `pyplot`, so nothing piles up in pyplot's
global state when a cell is run again and a figure is shown once, as the cell's value. Jupyter
learns to show such a Figure as a PNG from `show_figures_in_notebooks` (run on import): without
it, a Figure that pyplot does not track shows as `<Figure size ...>`.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ROOT = Path(__file__).resolve().parent.parent
AWS_MAPPING = ROOT / "docs" / "aws-mapping.md"

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and dark enough on a
# light card.
BLUE, ORANGE, GREEN, VERMILION, PURPLE, SKY, YELLOW, GREY = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#6B6B6B",
)
CARD = "#FFFFFF"
INK = "#1A1A1A"
STYLE = {
    "figure.facecolor": CARD,
    "axes.facecolor": CARD,
    "savefig.facecolor": CARD,
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": GREY,
    "xtick.color": INK,
    "ytick.color": INK,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titleweight": "bold",
    "font.size": 10,
    "legend.frameon": True,
    "legend.facecolor": CARD,
    "legend.edgecolor": "#CCCCCC",
}


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes, as a notebook shows it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, facecolor=CARD)
    return buffer.getvalue()


def show_figures_in_notebooks() -> bool:
    """Tell the running IPython kernel (if any) to show a Figure value as a PNG."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with JupyterLab
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)
    return True


show_figures_in_notebooks()


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(width, height), layout="constrained")
        figure.patch.set_facecolor(CARD)
    return figure


def _axes(figure: Figure, *args, **kwargs):
    with matplotlib.rc_context(STYLE):
        return figure.subplots(*args, **kwargs)


def _cumulative(times: Sequence[float]) -> tuple[list[float], list[int]]:
    """Arrival times as a step curve: (0, 0), then one more token at each arrival."""
    return [0.0, *times], list(range(len(times) + 1))


# --- streamed vs buffered -----------------------------------------------------------------------


def token_arrivals(
    streamed_s: Sequence[float],
    buffered_s: Sequence[float],
    *,
    client_timeout_s: float | None = None,
    title: str = "Streamed vs buffered: when the words reach the user",
) -> Figure:
    """Tokens on the user's screen against seconds since the request: one curve per answer.

    `streamed_s`: when each token of the streamed answer arrived; `buffered_s`: the same for
    the answer sent as one body (every token at the moment the body arrived). A client's read
    timeout, if given, is marked: a buffered answer later than it is never seen.
    """
    figure = _figure(8, 4)
    ax = _axes(figure)
    for times, colour, label in (
        (streamed_s, BLUE, "streamed (SSE): tokens arrive one by one"),
        (buffered_s, VERMILION, "buffered (one JSON body): nothing until the end"),
    ):
        x, y = _cumulative(times)
        ax.step(x, y, where="post", color=colour, linewidth=2.2, label=label)
        if times:
            ax.plot([times[0]], [1], marker="o", color=colour, markersize=7)
            ax.annotate(
                f"first words: {times[0]:.2f} s",
                (times[0], 1),
                xytext=(6, 14),
                textcoords="offset points",
                color=colour,
                fontweight="bold",
            )
    if buffered_s:
        ax.axvspan(0, buffered_s[0], color=VERMILION, alpha=0.07, label="buffered: silence")
    if client_timeout_s is not None:
        ax.axvline(
            client_timeout_s,
            color=PURPLE,
            linestyle=":",
            linewidth=2,
            label=f"client timeout: {client_timeout_s:g} s",
        )
    ends = [*streamed_s[-1:], *buffered_s[-1:], client_timeout_s or 0]
    ax.set_xlim(0, max(ends) * 1.2 or 1)
    ax.set_title(title, fontweight="bold")
    ax.set_xlabel("seconds since the request was sent")
    ax.set_ylabel("tokens on the user's screen")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    return figure


# --- the runaway --------------------------------------------------------------------------------


def runaway(
    capped_s: Sequence[float],
    uncapped_s: Sequence[float],
    *,
    dollars_per_token: float,
    max_stream_seconds: float,
    default_max_stream_seconds: float | None = None,
    title: str = "A model that never stops: what the limits save",
) -> Figure:
    """Tokens and dollars against seconds for a runaway model, with and without a token cap.

    `capped_s` / `uncapped_s`: when each token of the two streams arrived. The cut-off this run
    used (`max_stream_seconds`) is marked. A default (`default_max_stream_seconds`) far beyond
    the measurement would squash it to nothing, so it is written on the chart instead, with what
    the uncapped stream would reach by then at its measured rate (labelled as a projection).
    """
    figure = _figure(11, 4.2)
    tokens_ax, dollars_ax = _axes(figure, 1, 2, sharex=True)
    for ax, scale, unit in (
        (tokens_ax, 1.0, "tokens received"),
        (dollars_ax, dollars_per_token, "dollars"),
    ):
        # The two climb at the same speed until the cap: the capped curve is drawn wide and
        # pale underneath so that the uncapped one on top does not hide it.
        for times, colour, width, alpha, label in (
            (capped_s, GREEN, 5.5, 0.55, "max_tokens capped at the edge"),
            (uncapped_s, VERMILION, 2.0, 1.0, "no token cap"),
        ):
            x, y = _cumulative(times)
            ax.step(
                x,
                [v * scale for v in y],
                where="post",
                color=colour,
                linewidth=width,
                alpha=alpha,
                label=label,
            )
        if capped_s:  # the capped stream is over: flat from its last token to the chart's end
            chart_end = max(capped_s[-1], *uncapped_s[-1:], max_stream_seconds)
            ax.plot(
                [capped_s[-1], chart_end],
                [len(capped_s) * scale] * 2,
                color=GREEN,
                linestyle=(0, (1, 1.5)),
                linewidth=2,
                label=f"capped stream ended: {len(capped_s):,} tokens, nothing after",
            )
        ax.axvline(
            max_stream_seconds,
            color=PURPLE,
            linestyle=":",
            linewidth=2,
            label=f"max_stream_seconds in this run: {max_stream_seconds:g} s",
        )
        ax.set_xlabel("seconds since the stream started")
        ax.set_ylabel(unit)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    if (
        default_max_stream_seconds
        and uncapped_s
        and default_max_stream_seconds != max_stream_seconds
    ):
        rate = len(uncapped_s) / uncapped_s[-1]
        tokens = rate * default_max_stream_seconds
        dollars_ax.text(
            0.03,
            0.96,
            f"default max_stream_seconds: {default_max_stream_seconds:g} s (off this chart).\n"
            f"Projected at the measured {rate:.0f} tokens/s, no cap would reach\n"
            f"{tokens:,.0f} tokens, ${tokens * dollars_per_token:.4f}, per stream.",
            transform=dollars_ax.transAxes,
            ha="left",
            va="top",
            fontsize=8.5,
            bbox={"boxstyle": "round", "facecolor": CARD, "edgecolor": BLUE},
        )
    tokens_ax.set_title("Tokens")
    dollars_ax.set_title("Dollars (output tokens at the gateway's price)")
    tokens_ax.legend(loc="upper left", fontsize=8)
    figure.suptitle(title, fontweight="bold")
    return figure


# --- the stream guard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GuardTimeline:
    """One stream as the client saw it: token and ping arrival times, and how it ended."""

    tokens_s: Sequence[float]
    pings_s: Sequence[float]
    ended_s: float
    ending: str  # the end event's stop_reason or the error event's code


def stream_guard(
    runs: Mapping[str, GuardTimeline],
    *,
    first_token_timeout_s: float,
    idle_timeout_s: float,
    max_stream_seconds: float,
    title: str = "The stream guard: every stream ends, whatever the model does",
) -> Figure:
    """One timeline per (misbehaving) model: token ticks, ping ticks, the ending, and the three
    deadlines: first token (from the request), idle (from the last token) and total."""
    figure = _figure(10, 1.2 + 1.3 * len(runs))
    axes = _axes(figure, len(runs), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, run) in zip(axes, runs.items(), strict=True):
        ax.eventplot(
            [list(run.tokens_s)], lineoffsets=0.6, linelengths=0.5, colors=BLUE, label="token"
        )
        ax.eventplot(
            [list(run.pings_s)],
            lineoffsets=-0.1,
            linelengths=0.5,
            colors=ORANGE,
            linewidths=2.5,
            label=": ping (keep-alive)",
        )
        idle_from = run.tokens_s[-1] if run.tokens_s else None
        if idle_from is not None:  # the idle deadline still pending when the stream ended
            ax.axvspan(
                idle_from,
                min(idle_from + idle_timeout_s, run.ended_s),
                ymin=0.1,
                ymax=0.9,
                color=SKY,
                alpha=0.25,
                label=f"idle_timeout: {idle_timeout_s:g} s after the last token",
            )
        ax.axvline(
            first_token_timeout_s,
            color=PURPLE,
            linestyle=":",
            linewidth=2,
            label=f"first_token_timeout: {first_token_timeout_s:g} s",
        )
        ax.axvline(
            max_stream_seconds,
            color=VERMILION,
            linestyle="--",
            linewidth=2,
            label=f"max_stream_seconds: {max_stream_seconds:g} s",
        )
        ax.plot(
            [run.ended_s],
            [0.25],
            marker="X",
            markersize=11,
            color=INK,
            linestyle="none",
            label="stream ended",
        )
        ax.annotate(
            run.ending,
            (run.ended_s, 0.25),
            xytext=(8, -4),
            textcoords="offset points",
            fontweight="bold",
        )
        ax.set_ylim(-0.6, 1.1)
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontweight="bold")
        ax.grid(axis="y", visible=False)
    axes[-1].set_xlabel("seconds since the request was sent")
    axes[-1].set_xlim(left=0)
    # One legend for all rows, from every row: a row may lack an entry (no tokens: no idle span).
    legend: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    figure.legend(
        list(legend.values()), list(legend), loc="outside lower center", ncols=3, fontsize=8
    )
    figure.suptitle(title, fontweight="bold")
    return figure


# --- the retry storm ----------------------------------------------------------------------------


def requests_per_second(
    sent_s: Sequence[float], bin_seconds: float
) -> tuple[list[float], list[float]]:
    """Bin send times into a rate: (bin start times, requests per second in each bin)."""
    if bin_seconds <= 0:
        raise ValueError("bin_seconds must be positive")
    if not sent_s:
        return [], []
    bins = int(max(sent_s) // bin_seconds) + 1
    counts = [0] * bins
    for t in sent_s:
        counts[int(t // bin_seconds)] += 1
    return [i * bin_seconds for i in range(bins)], [c / bin_seconds for c in counts]


def retry_storm(
    storms: Mapping[str, Sequence[float]],
    *,
    refill_per_second: float,
    bystander: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    bin_seconds: float = 0.25,
    title: str = "A retry storm against a token bucket",
) -> Figure:
    """Top: requests per second over time for each storm (send times in seconds), against the
    bucket's refill rate. Bottom (if given): a well-behaved bystander's latency during each storm,
    as (times its requests were sent, their latencies in seconds)."""
    colours = (VERMILION, GREEN, BLUE, PURPLE)
    figure = _figure(10, 6.5 if bystander else 3.8)
    if bystander:
        rate_ax, latency_ax = _axes(figure, 2, 1, sharex=True)
    else:
        rate_ax, latency_ax = _axes(figure), None
    for colour, (label, sent) in zip(colours, storms.items(), strict=False):
        starts, rates = requests_per_second(sent, bin_seconds)
        if starts:
            rate_ax.stairs(
                rates,
                [*starts, starts[-1] + bin_seconds],
                color=colour,
                linewidth=2.2,
                label=f"{label}: {len(sent)} requests",
            )
    rate_ax.axhline(
        refill_per_second,
        color=INK,
        linestyle="--",
        linewidth=1.8,
        label=f"bucket refill: {refill_per_second:g} requests/s",
    )
    rate_ax.set_ylabel("requests per second")
    rate_ax.set_title("Requests the gateway had to answer")
    rate_ax.set_ylim(bottom=0)
    rate_ax.legend(loc="upper right", fontsize=8)
    if latency_ax is not None:
        for colour, (label, (sent, latency)) in zip(colours, bystander.items(), strict=False):
            latency_ax.plot(
                sent,
                [v * 1000 for v in latency],
                marker="o",
                markersize=4,
                color=colour,
                linewidth=1.5,
                label=f"bystander during: {label}",
            )
        latency_ax.set_ylabel("bystander latency (ms)")
        latency_ax.set_title("What another, well-behaved client waited meanwhile")
        latency_ax.set_ylim(bottom=0)
        latency_ax.legend(loc="upper right", fontsize=8)
        latency_ax.set_xlabel("seconds since the storm began")
    else:
        rate_ax.set_xlabel("seconds since the storm began")
    rate_ax.set_xlim(left=0)
    figure.suptitle(title, fontweight="bold")
    return figure


# --- cancel -------------------------------------------------------------------------------------


def cancel(
    received_s: Sequence[float],
    meter: Sequence[tuple[float, float]],
    *,
    cancelled_at_s: float,
    title: str = "Cancel: what the gateway's cost meter counted",
) -> Figure:
    """Tokens received by the client and the cost meter (tokens generated, sampled as
    (seconds, value) pairs) against seconds: two step charts, and where the cancel was sent."""
    figure = _figure(8, 4)
    ax = _axes(figure)
    x, y = _cumulative(received_s)
    ax.step(x, y, where="post", color=BLUE, linewidth=2.2, label="tokens the client received")
    if meter:
        times, values = zip(*meter, strict=True)
        ax.step(
            times,
            values,
            where="post",
            color=VERMILION,
            linewidth=2.2,
            linestyle="--",
            label="cost meter: tokens the model generated",
        )
    ax.axvline(
        cancelled_at_s,
        color=PURPLE,
        linestyle=":",
        linewidth=2,
        label=f"cancel sent at {cancelled_at_s:.2f} s",
    )
    ax.set_title(title, fontweight="bold")
    ax.set_xlabel("seconds since the question was asked")
    ax.set_ylabel("tokens")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right")
    return figure


# --- limits across workers -------------------------------------------------------------------


def limits_across_workers(
    runs: Mapping[str, tuple[int, int]],
    *,
    limit: int,
    workers: int,
    title: str = "One key's burst against a gateway of several workers",
) -> Figure:
    """One bar per run (label -> (accepted, refused)): the requests let through, against the
    key's limit and against what `workers` separate copies of that limit let through together;
    the refused ones (429) are counted on the bar, so a long burst does not flatten the chart."""
    figure = _figure(8, 4.2)
    ax = _axes(figure)
    labels = list(runs)
    accepted = [runs[label][0] for label in labels]
    positions = list(range(len(labels)))
    ax.bar(positions, accepted, width=0.5, color=GREEN, label="let through (200)")
    for x, label in zip(positions, labels, strict=True):
        let_through, refused = runs[label]
        ax.annotate(
            f"{let_through} let through\n{refused} refused (429)",
            (x, let_through),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontweight="bold",
            color=INK,
        )
    ax.axhline(
        limit, color=BLUE, linestyle="--", linewidth=2, label=f"the key's limit: {limit} requests"
    )
    ax.axhline(
        limit * workers,
        color=VERMILION,
        linestyle=":",
        linewidth=2,
        label=f"{workers} workers x {limit}: the most {workers} separate limits let through",
    )
    ax.set_xticks(positions, labels)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel("requests let through")
    ax.set_ylim(0, max([limit * workers, *accepted]) * 1.6)
    ax.set_title(title, fontweight="bold")
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper right", fontsize=8)
    return figure


# --- pictures: boxes and arrows -----------------------------------------------------------------


def _box(ax, x, y, w, h, heading, lines=(), colour=BLUE, dashed=False):
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.01,rounding_size=0.02",
            facecolor=colour + "22",
            edgecolor=colour,
            linewidth=2,
            linestyle="--" if dashed else "-",
        )
    )
    ax.text(
        x + w / 2,
        y + h - 0.03,
        heading,
        ha="center",
        va="top",
        fontweight="bold",
        fontsize=10,
        wrap=True,
    )
    if lines:
        ax.text(
            x + 0.012,
            y + h - 0.05 - 0.055 * (heading.count("\n") + 1),
            "\n".join(lines),
            ha="left",
            va="top",
            fontsize=7.5,
            linespacing=1.35,
        )


def _arrow(ax, start, end, text="", colour=INK, both=False):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="<|-|>" if both else "-|>",
            mutation_scale=16,
            color=colour,
            linewidth=1.8,
        )
    )
    if text:
        ax.text(
            (start[0] + end[0]) / 2,
            (start[1] + end[1]) / 2 + 0.025,
            text,
            ha="center",
            va="bottom",
            fontsize=8,
            color=colour,
        )


def _canvas(width: float, height: float, title: str):
    figure = _figure(width, height)
    ax = _axes(figure)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.set_title(title, fontweight="bold")
    return figure, ax


# --- the AWS path -------------------------------------------------------------------------------

# Where each limit is enforced on AWS: (box, setting field, row of docs/aws-mapping.md, which
# part of that row's AWS value when it names two places, separated by ";").
AWS_LIMITS = (
    ("api_gateway", "max_request_bytes", "MAX_REQUEST_BYTES", 0),
    ("api_gateway", "max_request_bytes", "MAX_REQUEST_BYTES` (WebSocket", 0),
    ("api_gateway", "first_token_timeout_seconds", "FIRST_TOKEN_TIMEOUT_SECONDS", 0),
    ("api_gateway", "idle_timeout_seconds", "IDLE_TIMEOUT_SECONDS", 0),
    ("api_gateway", "max_stream_seconds", "MAX_STREAM_SECONDS", 0),
    ("api_gateway", "rate_limit_rps", "RATE_LIMIT_RPS", 0),
    ("lambda", "max_stream_seconds", "MAX_STREAM_SECONDS", 1),
    ("lambda", "send_timeout_seconds", "SEND_TIMEOUT_SECONDS", 0),
    ("bedrock", "max_tokens_cap", "MAX_TOKENS_CAP", 0),
    ("bedrock", "tokens_per_minute", "TOKENS_PER_MINUTE", 0),
)


def aws_mapping_rows(path: Path = AWS_MAPPING) -> dict[str, dict[str, str]]:
    """The request-and-stream table of docs/aws-mapping.md, keyed by its first cell."""
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            rows[cells[0]] = dict(
                zip(
                    ("setting", "here", "counterpart", "aws", "adjustable", "source"),
                    cells,
                    strict=True,
                )
            )
    return rows


def aws_path_limits(settings, path: Path = AWS_MAPPING) -> dict[str, list[str]]:
    """For each AWS box, one line per limit: the setting and its value here, then the AWS value
    and its source id, as docs/aws-mapping.md gives them. Raises KeyError if a row is missing."""
    rows = aws_mapping_rows(path)
    limits: dict[str, list[str]] = {"api_gateway": [], "lambda": [], "bedrock": []}
    for box, field, row_key, part in AWS_LIMITS:
        row = next(row for key, row in rows.items() if key.startswith(f"`{row_key}"))
        aws = row["aws"].split(";")[part].strip() if ";" in row["aws"] else row["aws"]
        counterpart = (
            row["counterpart"].split(";")[part].strip()
            if ";" in row["counterpart"]
            else row["counterpart"]
        )
        value = getattr(settings, field)
        aws = "" if aws in ("—", "-") else f", {aws}"
        line = f"{field} = {value:g}: {counterpart}{aws} {row['source']}"
        limits[box].append(line.replace("`", ""))
    return limits


def aws_path(
    limits: Mapping[str, Sequence[str]],
    *,
    title: str = "The AWS path: each limit where it is enforced",
) -> Figure:
    """Client → API Gateway (REST API with response transfer mode STREAM, or a WebSocket API)
    → Lambda → Bedrock, with the limit lines under the box that enforces them
    (`limits` keys: "api_gateway", "lambda", "bedrock"; see `aws_path_limits`)."""
    figure, ax = _canvas(15, 5.0, title)
    wrap = 64
    boxes = (
        (
            "client",
            0.012,
            0.13,
            "Client\n(browser, app)",
            GREY,
            ["reads SSE or WebSocket", "retries only when told,", "after Retry-After"],
        ),
        (
            "api_gateway",
            0.175,
            0.40,
            "Amazon API Gateway\nREST API, transfer mode STREAM,\nor WebSocket API",
            BLUE,
            None,
        ),
        ("lambda", 0.60, 0.19, "AWS Lambda\n(your code)", ORANGE, None),
        ("bedrock", 0.815, 0.17, "Amazon Bedrock\nConverseStream", GREEN, None),
    )
    for key, x, w, heading, colour, fixed in boxes:
        lines = (
            fixed
            if fixed is not None
            else [
                chunk
                for line in limits.get(key, ())
                for chunk in _wrap(f"• {line}", wrap if w > 0.3 else 32)
            ]
        )
        _box(ax, x, 0.05, w, 0.82, heading, lines, colour)
    _arrow(ax, (0.145, 0.80), (0.175, 0.80), both=True)
    _arrow(ax, (0.575, 0.80), (0.60, 0.80), both=True)
    _arrow(ax, (0.79, 0.80), (0.815, 0.80), both=True)
    return figure


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent="   ")


# --- the two memory stories ---------------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    """One part of a memory story: the picture, what it stands for, and a line of why."""

    picture: str
    stands_for: str
    note: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Story:
    title: str
    flow: tuple[Role, ...]  # left to right, with arrows between
    around: tuple[Role, ...]  # drawn underneath: the rules and the set-up
    moral: str


PRESS_CONFERENCE = Story(
    title="Memory story 1: the live press conference",
    flow=(
        Role("The speaker", "the model", "answers one word after another"),
        Role(
            "The microphone + the rules",
            "API Gateway",
            "carries every word live;\ntoken limit and time limit per speaker",
        ),
        Role(
            "The livestream viewer",
            "the client",
            "hears the answer as it is spoken:\nstreaming (SSE)",
        ),
    ),
    around=(
        Role("The press briefing agenda", "OpenAPI", "fixed before anyone speaks"),
        Role(
            "The TV studio set-up", "Amplify", "makes the broadcast quick to set up", optional=True
        ),
    ),
    moral="You don't let speakers talk forever: the limits belong to the microphone,"
    " not the speaker.",
)

PODCAST_STUDIO = Story(
    title="Memory story 2: the live podcast studio",
    flow=(
        Role("Host and guest", "the model", "talk live"),
        Role(
            "The producer", "API Gateway", "enforces the rules:\nwho may talk, how long, how much"
        ),
        Role(
            "Call-in line / broadcast",
            "WebSocket / SSE",
            "call-in: both sides talk (WebSocket)\nbroadcast: listeners only (SSE)",
        ),
    ),
    around=(
        Role("The show format", "OpenAPI", "every episode follows it"),
        Role("The studio set-up", "Amplify", "gets the studio running fast", optional=True),
    ),
    moral="No producer means chaos: callers talk over each other and the show never ends.",
)


def memory_story(story: Story) -> Figure:
    """A story as a picture: its roles left to right with arrows, the rules and the set-up
    beneath, each box naming what it stands for; optional parts are dashed."""
    figure, ax = _canvas(12, 5.2, story.title)
    colours = (GREEN, BLUE, PURPLE)
    width, gap = 0.28, (1 - 3 * 0.28) / 4
    for i, (role, colour) in enumerate(zip(story.flow, colours, strict=False)):
        x = gap + i * (width + gap)
        _role_box(ax, role, x, 0.50, width, 0.38, colour)
        if i:
            _arrow(ax, (x - gap + 0.005, 0.69), (x - 0.005, 0.69))
    for i, role in enumerate(story.around):
        x = gap + i * (width + gap) + (width + gap) / 2
        _role_box(ax, role, x, 0.14, width, 0.27, ORANGE if role.optional else GREY)
    ax.text(0.5, 0.03, story.moral, ha="center", va="bottom", fontsize=10, style="italic")
    return figure


def _role_box(ax, role: Role, x, y, w, h, colour):
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.01,rounding_size=0.02",
            facecolor=colour + "22",
            edgecolor=colour,
            linewidth=2,
            linestyle="--" if role.optional else "-",
        )
    )
    ax.text(
        x + w / 2, y + h - 0.04, role.picture, ha="center", va="top", fontweight="bold", fontsize=11
    )
    label = f"= {role.stands_for}" + (" (optional)" if role.optional else "")
    ax.text(x + w / 2, y + h - 0.12, label, ha="center", va="top", fontsize=10, style="italic")
    if role.note:
        ax.text(x + w / 2, y + 0.03, role.note, ha="center", va="bottom", fontsize=8.5)


def text_in(figure: Figure) -> str:
    """Every piece of text a figure shows (titles, labels, legends, annotations), for tests."""
    return "\n".join(t.get_text() for t in figure.findobj(matplotlib.text.Text) if t.get_text())
