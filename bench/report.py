"""The one table: every figure with what was measured, its target and ok or MISSED.

`rows(results)` turns the figures' results into rows; `markdown(...)` writes docs/benchmarks.md,
`console(...)` prints the same table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    target: str = "(shown)"
    ok: bool | None = None  # None: a figure shown for context, with no target

    @property
    def status(self) -> str:
        return "-" if self.ok is None else "ok" if self.ok else "MISSED"


def cost_rows(cost: dict) -> list[Row]:
    sse, ws = cost["sse"], cost["ws"]
    return [
        Row(
            "SSE per-token cost, gateway / bare sse-starlette",
            f"{cost['sse_ratio_bare']:.2f}x ({sse['gateway-instant']['us_per_token']:.1f} / "
            f"{sse['sse-bare']['us_per_token']:.1f} µs)",
            "<= 1.0x",
            cost["sse_ratio_bare"] <= 1.0,
        ),
        Row(
            "SSE per-token cost, gateway / hand-written StreamingResponse",
            f"{cost['sse_ratio_floor']:.2f}x ({sse['gateway-instant']['us_per_token']:.1f} / "
            f"{sse['sse-floor']['us_per_token']:.1f} µs)",
            "<= 1.6x",
            cost["sse_ratio_floor"] <= 1.6,
        ),
        Row(
            "WebSocket per-token cost, gateway / bare WebSocket endpoint",
            f"{cost['ws_ratio_bare']:.2f}x ({ws['gateway-instant']['us_per_token']:.1f} / "
            f"{ws['ws-bare']['us_per_token']:.1f} µs)",
            "<= 1.6x",  # the bare endpoint is WebSocket's floor, so the floor's target
            cost["ws_ratio_bare"] <= 1.6,
        ),
        Row(
            "Time to first token added by the gateway, p50",
            f"{cost['ttft_added_p50_ms']:.3f} ms",
            "<= 0.3 ms",
            cost["ttft_added_p50_ms"] <= 0.3,
        ),
        # The p99s of two servers, side by side: their difference alone can come out negative,
        # when the bare server's slowest first tokens are slower than the gateway's.
        Row(
            "Time to first token, p99: gateway / bare sse-starlette",
            f"{sse['gateway-instant']['ttft_p99_ms']:.3f} / "
            f"{sse['sse-bare']['ttft_p99_ms']:.3f} ms",
        ),
    ]


def concurrency_rows(concurrency: dict) -> list[Row]:
    rows = []
    for kind, name in (("sse", "SSE streams"), ("ws", "WebSocket chats")):
        c = concurrency[kind]
        label = f"{c['streams']} {name} at 100 tokens/s, one worker"
        rows += [
            Row(
                f"{label}: tokens lost / reordered / bad ends",
                f"{c['lost']} / {c['reordered']} / {c['bad_ends']}",
                "0",
                c["lost"] == c["reordered"] == c["bad_ends"] == 0,
            ),
            Row(
                f"{label}: p99 gap between tokens",
                f"{c['gap_p99_ms']:.1f} ms (p50 {c['gap_p50_ms']:.1f}; server "
                f"{c['server_cores']:.2f} cores, client {c['client_cores']:.2f}; waited for a "
                f"CPU {c['run_queue_wait_ms']:.0f} ms per round)",
                "<= 50 ms",
                c["gap_p99_ms"] <= 50.0,
            ),
            Row(f"{label}: peak server memory", f"{c['server_peak_mib']:.0f} MiB"),
        ]
    return rows


def idle_rows(idle: dict) -> list[Row]:
    return [
        Row(
            f"Memory per idle {name} ({i['alive']} of {i['connections']} alive at the end)",
            f"{i['kib_per_connection']:.1f} KiB",
            "<= 40 KiB",
            i["kib_per_connection"] <= 40.0 and i["alive"] == i["connections"],
        )
        for name, i in (("SSE stream", idle["sse"]), ("WebSocket chat", idle["ws"]))
    ]


def cancel_rows(cancel: dict) -> list[Row]:
    names = {"sse": "SSE", "ws": "WebSocket", "emitting": "model emitting", "stalled": "stalled"}
    rows = []
    for key, c in cancel.items():
        kind, model = key.split("_")
        rows.append(
            Row(
                f"Cancel: client gone to model stopped, {names[kind]}, {names[model]}, p50",
                f"{c['p50_ms']:.2f} ms (p99 {c['p99_ms']:.2f}; {c['not_stopped']} not stopped)",
                "<= 5 ms",
                c["p50_ms"] <= 5.0 and c["not_stopped"] == 0,
            )
        )
    return rows


def limit_rows(limits: dict) -> list[Row]:
    names = {"stream": "max_stream_seconds", "idle": "idle timeout"}
    return [
        Row(
            f"Limit precision: {names[key]} ({limit['setting_s']:g} s), end against the setting, "
            f"worst of {limit['samples']}",
            f"{limit['worst_ms']:+.1f} ms (median {limit['median_ms']:+.1f})",
            "within 50 ms",
            abs(limit["worst_ms"]) <= 50.0,
        )
        for key, limit in limits.items()
    ]


def workers_rows(workers: dict) -> list[Row]:
    redis, several = workers["redis"], workers["workers"]
    if redis["available"]:
        ms, us = redis["request_ms"], redis["us_per_token"]
        shared = [
            Row(
                "Limits shared in Redis: one short request (rate check, admission, release), "
                "Redis / in memory",
                f"{redis['request_ratio']:.2f}x ({ms['redis']:.3f} / {ms['memory']:.3f} ms)",
            ),
            Row(
                "Limits shared in Redis: per-token cost of a long stream, Redis / in memory",
                f"{redis['token_ratio']:.2f}x ({us['redis']:.1f} / {us['memory']:.1f} µs)",
            ),
        ]
    else:
        shared = [
            Row(
                "Limits shared in Redis: cost per request and per token",
                f"n/a ({redis['reason']})",
                "-",
            )
        ]
    return shared + [
        Row(
            f"{several['workers']} workers against one: short streamed answers per second",
            f"{several['ratio']:.2f}x ({several['several_per_second']:.0f} / "
            f"{several['one_per_second']:.0f} per second; {several['cores']} cores, "
            f"{several['concurrency']} clients at once)",
        )
    ]


def rows(results: dict) -> list[Row]:
    return (
        cost_rows(results["cost"])
        + concurrency_rows(results["concurrency"])
        + idle_rows(results["idle"])
        + cancel_rows(results["cancel"])
        + limit_rows(results["limits"])
        + workers_rows(results["workers"])
    )


def missed(table: list[Row]) -> list[Row]:
    return [row for row in table if row.ok is False]


def console(table: list[Row]) -> str:
    width = max(len(row.figure) for row in table)
    lines = [
        f"{row.status:>6}  {row.figure:<{width}}  {row.measured}  [{row.target}]" for row in table
    ]
    return "\n".join(lines)


def markdown(table: list[Row], machine: dict, seconds: float) -> str:
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); every figure below was measured side by",
        "side in one run on loopback. The machine-readable results are in `.bench/results.json`.",
        "",
        f"- Date: {machine['date']}",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['os']}",
        f"- Python {machine['python']}; {packages}",
        f"- Run time: {seconds:.0f} s",
        "",
        "How to read it: every server runs in its own process pinned to CPU 0 (the servers a",
        "cost ratio compares run together and are measured in turn, the fastest round of each",
        "kept), and the clients (raw sockets, no client library where throughput matters) run in",
        "another process pinned to CPU 1. With two cores there is no third core for the rest of",
        "the machine, so anything else running during the benchmark competes with the server or",
        "the clients:",
        "numbers from a shared or busy machine are noisy, and ratios measured in the same run are",
        "more telling than absolute times. The concurrency figures need the server's one core for",
        "500 streams at once; a second worker would need a core of its own, which this machine",
        "does not have beside the clients: the workers row measures what several workers give",
        "here, without a target. Each figure's meaning and the reason for its target",
        "are in the docstring of its module in `bench/` (`fig_*.py`). In the concurrency rows,",
        "'waited for a CPU' is the time the server and the client were ready to run while",
        "another process held their CPU (schedstat): far above zero, the gaps are not the",
        "gateway's alone.",
        "",
        "| Figure | Measured | Target | Result |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.figure} | {r.measured} | {r.target} | {r.status} |" for r in table]
    failed = missed(table)
    lines += ["", f"Targets missed: {len(failed)}" + (":" if failed else ".")]
    lines += [f"- {row.figure}: {row.measured} (target {row.target})" for row in failed]
    return "\n".join(lines) + "\n"
