"""Write BENCHMARKS.md from the figures the benchmarks left in a folder (``bench/run``).

Usage: .venv/bin/python bench/report.py RESULTS --command "bench/run" --output BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def fsync_ms() -> float:
    """The median cost of one fsync of a new 2 KB file here, in ms."""
    costs = []
    with tempfile.TemporaryDirectory(dir=BENCH) as folder:
        for number in range(15):
            fd = os.open(Path(folder) / str(number), os.O_CREAT | os.O_WRONLY)
            os.write(fd, b"x" * 2048)
            started = time.perf_counter()
            os.fsync(fd)
            costs.append(time.perf_counter() - started)
            os.close(fd)
    return statistics.median(costs) * 1000


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average at the end {load}; "
        f"one fsync of a new file ~{fsync_ms():.1f} ms on the disk under bench/"
    )


def verdict(met: bool) -> str:
    return "**met**" if met else "not met"


def receive_section(data: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, str]]]:
    results, labels, w = data["results"], data["labels"], data["workers"]
    modes = data["durable_modes"]
    sink, salmon = results["smtp-sink"], results["salmon"]
    lines = [
        "## 1. Receive throughput",
        "",
        f"smtp-source → 127.0.0.1, {data['messages']:,} messages of {data['size']:,} bytes, "
        f"{data['sessions']} sessions, best of {data['rounds']} (servers taken in turn each "
        "round). Messages per second; the ratios are to Salmon and to smtp-sink in the same run.",
        "",
        "| server | new connection per message | reused connections "
        "| new ÷ Salmon | new ÷ smtp-sink |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in labels.items():
        figures = results[name]
        lines.append(
            f"| {label} | {figures['new']:,.0f} | {figures['reuse']:,.0f} "
            f"| {figures['new'] / salmon['new']:.2f} | {figures['new'] / sink['new']:.2f} |"
        )
    durables = [f"serve-{sync}{suffix}" for sync in modes for suffix in ("", f"-w{w}")]
    durable = max(durables, key=lambda n: results[n]["new"])
    best = results[durable]
    lines += [
        "",
        "Durable ÷ non-durable, same number of processes:",
        "",
        "| durability | processes | new connection per message | reused connections |",
        "|---|---|---:|---:|",
    ]
    group: list[float] = []
    for sync in modes:
        for suffix, processes in (("", "1"), (f"-w{w}", str(w))):
            none, durable_run = results[f"serve-none{suffix}"], results[f"serve-{sync}{suffix}"]
            ratios = (durable_run["new"] / none["new"], durable_run["reuse"] / none["reuse"])
            group.append(min(ratios))
            lines.append(f"| {sync} | {processes} | {ratios[0]:.2f} | {ratios[1]:.2f} |")
    targets = [
        (
            "`mailsim serve`, durable, ≥ 2x Salmon (new connection per message)",
            f"{best['new'] / salmon['new']:.2f}x ({labels[durable]})",
            verdict(best["new"] >= 2 * salmon["new"]),
        ),
        (
            "`mailsim serve`, durable, ≥ 40% of smtp-sink (new connection per message)",
            f"{best['new'] / sink['new']:.0%} ({labels[durable]})",
            verdict(best["new"] >= 0.4 * sink["new"]),
        ),
        (
            "durable ≥ 80% of non-durable at 10 sessions (group commit)",
            f"{max(group):.2f} at best, in both modes of connection (see §1)",
            verdict(max(group) >= 0.8),
        ),
    ]
    return lines, targets


def cpu_section(data: dict[str, Any], receive: dict[str, Any]) -> list[str]:
    """Where `mailsim serve`'s CPU goes per message (bench/serve_cpu.py), against what
    a message may cost at the receive targets on this machine's cores."""
    merged: dict[str, dict[str, float]] = {}
    for key, micros in data["per_message"].items():
        thread, _, kind = key.rpartition(" ")
        # The delivery workers are alike: one row for all of them.
        name = "delivery workers (all)" if thread.startswith("mailsim-worker-") else thread
        if name == "MainThread":
            name = "event loop (main thread)"
        row = merged.setdefault(name, {"user": 0.0, "system": 0.0})
        row[kind] += micros
    lines = [
        "### CPU per message, by thread",
        "",
        f"`bench/serve_cpu.py`: `mailsim serve` (one process, durability "
        f"{data['durability']}) given {data['messages']:,} messages by smtp-source with a new "
        f"connection each, until all are delivered ({data['received']:,.0f} received and "
        f"{data['delivered']:,.0f} delivered per second in that run). CPU time from `/proc`, "
        "which moves far less with the machine's load than throughput does.",
        "",
        "| thread | user µs | system µs |",
        "|---|---:|---:|",
    ]
    for name, row in sorted(merged.items(), key=lambda item: -sum(item[1].values())):
        if sum(row.values()) >= 1:
            lines.append(f"| {name} | {row['user']:,.0f} | {row['system']:,.0f} |")
    total = sum(sum(row.values()) for row in merged.values())
    lines.append(f"| **all threads** | | **{total:,.0f}** (user + system) |")
    named = "delivery workers (all)" in merged
    receiving = sum(
        sum(row.values()) for name, row in merged.items() if name != "delivery workers (all)"
    )
    cores = os.cpu_count() or 1
    results = receive["results"]
    rates = {
        "2x Salmon": 2 * results["salmon"]["new"],
        "40% of smtp-sink": 0.4 * results["smtp-sink"]["new"],
    }
    budgets = ", ".join(
        f"{name} ({rate:,.0f}/s) leaves {cores * 1e6 / rate:,.0f} µs"
        for name, rate in rates.items()
    )
    lines += [
        "",
        f"What a message may cost in all, on all {cores} cores and with nothing left for the "
        f"load generator, at the receive targets: {budgets}. "
        + (
            f"Receiving alone (event loop and writer, without delivering) takes "
            f"{receiving:,.0f} µs here."
            if named
            else f"Everything together takes {total:,.0f} µs here (the threads could not be "
            "named, so receiving cannot be told from delivering: py-spy was missing)."
        ),
    ]
    return lines


def world_section(data: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, str]]]:
    lines = [
        "## 2. World throughput",
        "",
        f"One thread (one core). Echo: {data['messages']:,} messages, best of {data['rounds']}; "
        f"mailing list: {data['posts']:,} posts to a list of {data['members']} members.",
        "",
        "| measure | msg/s | ratio |",
        "|---|---:|---:|",
        f"| `App.deliver` alone, messages built beforehand (baseline) | "
        f"{data['app_deliver']:,.0f} | 1.00 |",
        f"| World, echo handler: send, route, state change, reply, deliver the reply | "
        f"{data['world_echo']:,.0f} | {data['world_echo'] / data['app_deliver']:.2f} |",
        f"| World, mailing list: posts routed (spam-scored, archived, sent on) | "
        f"{data['list_posts']:,.0f} | |",
        f"| World, mailing list: copies delivered to members | {data['list_copies']:,.0f} | |",
    ]
    targets = [
        (
            "World ≥ 10,000 routed messages/s per core (echo handler)",
            f"{data['world_echo']:,.0f}/s = {data['world_echo'] / 10_000:.0%} of it",
            verdict(data["world_echo"] >= 10_000),
        )
    ]
    return lines, targets


def features_section(data: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, str]]]:
    lines = [
        "## 3. The same features in the world and live",
        "",
        f"`examples/mailinglist/features`, tags `not @world`: in this process with a fresh "
        "world per scenario, and live with `mailsim run --live` against the example served "
        f"by `mailsim serve` on loopback. {data['rounds']} rounds, each giving the world "
        f"{data['world_seconds']:g} s of runs and then running the features live once; the "
        "best time of each side.",
        "",
        "| run | scenarios | seconds per dozen | ratio |",
        "|---|---:|---:|---:|",
        f"| mailing list, live against `mailsim serve` (baseline) | {data['live_scenarios']} "
        f"| {data['live_per_dozen']:.2f} | 1.0 |",
        f"| mailing list, the same features in the world | {data['world_scenarios']} "
        f"| {data['world_per_dozen']:.2f} | {data['ratio']:.1f} |",
        f"| the step library's echo features in the world | {data['echo_scenarios']} "
        f"| {data['echo_per_dozen']:.2f} | |",
    ]
    targets = [
        (
            "a feature suite ≥ 20x faster in the world than live",
            f"{data['ratio']:.1f}x",
            verdict(data["ratio"] >= 20),
        )
    ]
    return lines, targets


def memory_section(data: dict[str, Any]) -> list[str]:
    world, state = data["world"], data["state"]
    return [
        "## 4. Memory and size",
        "",
        "| measure | figure |",
        "|---|---:|",
        f"| World with {world['mailboxes']:,} mailboxes: RSS growth "
        f"| {world['rss_delta_mib']:.1f} MiB ({world['bytes_per_mailbox']:.0f} bytes each) |",
        f"| … time to create them | {world['create_s']:.2f} s |",
        f"| … `world.mailbox(address)` lookup | {world['lookup_us']:.2f} µs |",
        f"| `SqlStateStore` on SQLite with {state['conversations']:,} conversations: file "
        f"| {state['file_mib']:.1f} MiB ({state['bytes_per_conversation']:.0f} bytes each) |",
        f"| … bulk insert of the rows (set-up, batches of 50,000) | {state['insert_s']:.1f} s |",
        f"| … `get` of an existing conversation | {state['get_us']:.0f} µs |",
        f"| … `get` of a missing one (START) | {state['get_missing_us']:.0f} µs |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--command", default="bench/run")
    parser.add_argument("--seconds", type=int, default=0)
    parser.add_argument("--output", type=Path, default=BENCH.parent / "BENCHMARKS.md")
    parser.add_argument("--notes", type=Path, default=BENCH / "NOTES.md")
    options = parser.parse_args()

    def load(name: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((options.results / f"{name}.json").read_text())
        return loaded

    receive_lines, receive_targets = receive_section(load("receive"))
    world_lines, world_targets = world_section(load("world"))
    feature_lines, feature_targets = features_section(load("features"))
    memory_lines = memory_section(load("memory"))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    minutes = f", {options.seconds // 60} min {options.seconds % 60} s" if options.seconds else ""
    out = [
        "# Benchmarks",
        "",
        "Written by `bench/run`; do not edit by hand (the notes at the end come from "
        "`bench/NOTES.md`). Every figure below was measured in one run, side by side with "
        "its reference: these machines are shared and noisy, so only the ratios compare "
        "between runs.",
        "",
        f"- command: `{options.command}`{minutes}",
        f"- date: {now}",
        f"- machine: {machine()}",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *(
            f"| {name} | {measured} | {met} |"
            for name, measured, met in receive_targets + world_targets + feature_targets
        ),
        "",
        *receive_lines,
        "",
        *cpu_section(load("cpu"), load("receive")),
        "",
        *world_lines,
        "",
        *feature_lines,
        "",
        *memory_lines,
        "",
    ]
    if options.notes.exists():
        out += [options.notes.read_text().rstrip(), ""]
    options.output.write_text("\n".join(out))


if __name__ == "__main__":
    main()
