"""course/plots.py: each figure plots exactly the data it is given, titled and labelled.

Every test also saves its figure to test-artifacts/test_plots/<name>.png for a person to look at.
"""

from __future__ import annotations

import matplotlib
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from course import plots
from reference_impl.settings import Settings

pytestmark = pytest.mark.timeout(60)
ARTIFACTS = plots.ROOT / "test-artifacts" / "test_plots"


def save(figure: Figure, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    figure.savefig(ARTIFACTS / f"{name}.png", dpi=90)


def line(ax, label):
    return next(line for line in ax.get_lines() if line.get_label() == label)


def luminance(colour) -> float:
    r, g, b = to_rgb(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def assert_readable_in_both_themes(figure: Figure) -> None:
    # An opaque light card with dark ink: JupyterLab's dark theme cannot show through it.
    assert figure.patch.get_alpha() in (None, 1.0)
    assert luminance(figure.patch.get_facecolor()) > 0.9
    for ax in figure.axes:
        assert luminance(ax.get_facecolor()) > 0.9
    for text in figure.findobj(matplotlib.text.Text):
        if text.get_text():
            assert luminance(text.get_color()) < 0.6, f"pale text {text.get_text()!r}"


STREAMED = [0.21, 0.24, 0.27, 0.30, 0.33]
BUFFERED = [0.35] * 5


def test_token_arrivals_draws_one_step_curve_per_answer_from_the_arrival_times():
    figure = plots.token_arrivals(STREAMED, BUFFERED, client_timeout_s=0.3)
    save(figure, "token_arrivals")
    (ax,) = figure.axes
    streamed = line(ax, "streamed (SSE): tokens arrive one by one")
    buffered = line(ax, "buffered (one JSON body): nothing until the end")
    assert list(streamed.get_xdata()) == [0.0, *STREAMED]
    assert list(streamed.get_ydata()) == [0, 1, 2, 3, 4, 5]
    assert list(buffered.get_xdata()) == [0.0, *BUFFERED]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert "first words: 0.21 s" in plots.text_in(figure)
    assert "first words: 0.35 s" in plots.text_in(figure)
    assert line(ax, "client timeout: 0.3 s").get_xdata()[0] == 0.3
    assert_readable_in_both_themes(figure)


def test_runaway_plots_tokens_and_dollars_and_marks_the_limits():
    capped = [0.1 * i for i in range(1, 11)]
    uncapped = [0.05 * i for i in range(1, 61)]
    figure = plots.runaway(
        capped,
        uncapped,
        dollars_per_token=0.015 / 1000,
        max_stream_seconds=3,
        default_max_stream_seconds=120,
    )
    save(figure, "runaway")
    tokens_ax, dollars_ax = figure.axes
    assert list(line(tokens_ax, "no token cap").get_ydata())[-1] == 60
    assert list(line(tokens_ax, "max_tokens capped at the edge").get_xdata())[1:] == capped
    assert line(dollars_ax, "no token cap").get_ydata()[-1] == pytest.approx(60 * 0.015 / 1000)
    # The capped stream stays flat after its last token, to the end of the chart.
    ended = line(tokens_ax, "capped stream ended: 10 tokens, nothing after")
    assert list(ended.get_xdata()) == pytest.approx([1.0, 3.0])
    assert list(ended.get_ydata()) == [10, 10]
    text = plots.text_in(figure)
    assert "max_stream_seconds in this run: 3 s" in text
    assert "default max_stream_seconds: 120 s" in text
    assert "20 tokens/s" in text and "2,400 tokens, $0.0360" in text  # 60 tokens in 3 s
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in figure.axes)
    assert_readable_in_both_themes(figure)


def test_stream_guard_draws_one_timeline_per_model_with_its_ticks_and_deadlines():
    runs = {  # the first row has no token, so no idle span: the legend still names it
        "silent": plots.GuardTimeline([], [], 0.8, "model_timeout"),
        "stall": plots.GuardTimeline([0.2, 0.25], [0.5, 1.0], 1.25, "idle_timeout"),
        "runaway": plots.GuardTimeline(
            [0.1 * i for i in range(1, 20)], [0.5, 1.0, 1.5], 2.0, "stream_timeout"
        ),
    }
    figure = plots.stream_guard(
        runs, first_token_timeout_s=0.8, idle_timeout_s=1.0, max_stream_seconds=2.0
    )
    save(figure, "stream_guard")
    assert len(figure.axes) == 3
    for ax, run in zip(figure.axes, runs.values(), strict=True):
        tokens, pings = ax.collections[:2]
        assert sorted(tokens.get_positions()) == pytest.approx(sorted(run.tokens_s))
        assert sorted(pings.get_positions()) == pytest.approx(sorted(run.pings_s))
    (legend,) = figure.legends
    assert "idle_timeout: 1 s after the last token" in [t.get_text() for t in legend.get_texts()]
    text = plots.text_in(figure)
    for words in (
        "stall",
        "runaway",
        "silent",
        "idle_timeout",
        "stream_timeout",
        "model_timeout",
        "first_token_timeout: 0.8 s",
        "max_stream_seconds: 2 s",
        "idle_timeout: 1 s after the last token",
    ):
        assert words in text
    assert_readable_in_both_themes(figure)


def test_requests_per_second_bins_every_request_once():
    starts, rates = plots.requests_per_second([0.0, 0.1, 0.3, 0.6, 0.61], 0.25)
    assert starts == [0.0, 0.25, 0.5]
    assert rates == [8.0, 4.0, 8.0]
    assert sum(rate * 0.25 for rate in rates) == 5


def test_retry_storm_plots_the_rate_against_the_refill_and_the_bystanders_latency():
    hammer = [0.01 * i for i in range(200)]
    patient = [0.0, 0.2, 0.4, 1.1, 1.5]
    figure = plots.retry_storm(
        {"retry at once": hammer, "honour Retry-After": patient},
        refill_per_second=5,
        bystander={
            "retry at once": ([0.1, 0.5, 0.9], [0.030, 0.045, 0.050]),
            "honour Retry-After": ([0.1, 0.5, 0.9], [0.004, 0.005, 0.004]),
        },
    )
    save(figure, "retry_storm")
    rate_ax, latency_ax = figure.axes
    hammered = next(p for p in rate_ax.patches if p.get_label().startswith("retry at once"))
    assert sum(v * 0.25 for v in hammered.get_data()[0]) == pytest.approx(len(hammer))
    assert "bucket refill: 5 requests/s" in plots.text_in(figure)
    assert list(line(latency_ax, "bystander during: retry at once").get_ydata()) == [30, 45, 50]
    assert_readable_in_both_themes(figure)


def test_cancel_draws_what_was_received_and_the_meter_and_marks_the_cancel():
    received = [0.1, 0.2, 0.3, 0.4]
    meter = [(0.0, 0), (0.15, 2), (0.3, 4), (0.45, 5), (0.6, 5), (0.9, 5)]
    figure = plots.cancel(received, meter, cancelled_at_s=0.42)
    save(figure, "cancel")
    (ax,) = figure.axes
    assert list(line(ax, "tokens the client received").get_ydata()) == [0, 1, 2, 3, 4]
    metered = line(ax, "cost meter: tokens the model generated")
    assert list(zip(metered.get_xdata(), metered.get_ydata(), strict=True)) == meter
    assert "cancel sent at 0.42 s" in plots.text_in(figure)
    assert_readable_in_both_themes(figure)


def test_aws_path_puts_each_limit_from_the_settings_and_the_mapping_under_its_service():
    settings = Settings(max_stream_seconds=90, tokens_per_minute=12_345)
    limits = plots.aws_path_limits(settings)
    assert any(
        "max_stream_seconds = 90" in line and "[apigw-rest-streaming]" in line
        for line in limits["api_gateway"]
    )
    assert any("max_stream_seconds = 90" in line and "Lambda" in line for line in limits["lambda"])
    assert any(
        "tokens_per_minute = 12345" in line and "[bedrock-quotas]" in line
        for line in limits["bedrock"]
    )
    figure = plots.aws_path(limits)
    save(figure, "aws_path")
    text = plots.text_in(figure)
    for service in ("API Gateway", "WebSocket API", "STREAM", "Lambda", "Bedrock", "Client"):
        assert service in text
    assert "12345" in text and "[apigw-rest-quotas]" in text
    assert_readable_in_both_themes(figure)


@pytest.mark.parametrize(
    "story",
    [plots.PRESS_CONFERENCE, plots.PODCAST_STUDIO],
    ids=["press_conference", "podcast_studio"],
)
def test_a_memory_story_shows_every_role_and_what_it_stands_for(story):
    figure = plots.memory_story(story)
    save(figure, story.title.split(": ")[1].replace(" ", "_"))
    text = plots.text_in(figure)
    assert story.title in text and story.moral in text
    for role in (*story.flow, *story.around):
        assert role.picture in text and role.stands_for in text
    assert "Amplify (optional)" in text
    assert_readable_in_both_themes(figure)


def test_limits_across_workers_draws_what_got_through_per_run_against_both_limits():
    runs = {"in memory, 3 workers": (13, 107), "Redis, 3 workers": (5, 115)}
    figure = plots.limits_across_workers(runs, limit=5, workers=3)
    save(figure, "limits_across_workers")
    (ax,) = figure.axes
    (accepted,) = ax.containers
    assert [bar.get_height() for bar in accepted] == [13, 5]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(runs)
    assert list(line(ax, "the key's limit: 5 requests").get_ydata()) == [5, 5]
    most = "3 workers x 5: the most 3 separate limits let through"
    assert list(line(ax, most).get_ydata()) == [15, 15]
    text = plots.text_in(figure)
    assert "13 let through\n107 refused (429)" in text
    assert "5 let through\n115 refused (429)" in text
    assert ax.get_title() and ax.get_ylabel()
    assert_readable_in_both_themes(figure)
