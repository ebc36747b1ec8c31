"""The same feature files in the simulated world and against ``mailsim serve``.

Runs the mailing-list example's features that can run live (``not @world``) in the
world (in this process, a fresh world per scenario) and live (the example served by
``mailsim serve`` on loopback, its relay pointed at the run's sink), in alternation:
each round gives the world *--world-seconds* of runs, then runs the features live
once. Prints the best seconds per dozen scenarios of each side and the ratio. Also the
step library's own echo features in the world: what `mailsim run` itself costs per
dozen scenarios.

    .venv/bin/python bench/features_world_vs_live.py [--rounds N] [--world-seconds S]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import tempfile
import time
from pathlib import Path

from mailsim.live.served import serve_copy
from mailsim.steps.runner import RunResult, run_features

ROOT = Path(__file__).resolve().parents[1]
MAILINGLIST = ROOT / "examples" / "mailinglist"
ECHO_FEATURES = [
    ROOT / "features" / f"{name}.feature"
    for name in ("sending_and_receiving", "capture", "time_and_hosts")
]
LIVE_TAGS = "not @world"


def in_world(paths: list[Path], tags: str | None = None) -> tuple[float, int]:
    with contextlib.redirect_stdout(io.StringIO()):
        started = time.perf_counter()
        result: RunResult = run_features(paths, tags=tags)
        elapsed = time.perf_counter() - started
    if not result.passed:
        raise SystemExit(f"the features failed in the world: {paths}")
    return elapsed, len(result.records)


def side_by_side(rounds: int, world_seconds: float) -> tuple[float, int, float, int]:
    """Best time of the features live and in the world, taken in alternation.

    Each round runs the features in the world again and again for *world_seconds*,
    then once live: both sides are sampled through the same stretches of the
    machine's load, and the world, a few hundredths of a second a run, gets as much
    time as the live run to find its best (a slow spell of a second would otherwise
    cover every one of its runs).
    """
    features = [MAILINGLIST / "features"]
    world_best, world_count = float("inf"), 0
    live_best, live_count = float("inf"), 0
    with tempfile.TemporaryDirectory() as workdir, serve_copy(MAILINGLIST, Path(workdir)) as served:
        for _ in range(rounds):
            spent = 0.0
            while spent < world_seconds:
                elapsed, world_count = in_world(features, LIVE_TAGS)
                world_best, spent = min(world_best, elapsed), spent + elapsed
            started = time.perf_counter()
            completed = served.run_live(
                "--tags", LIVE_TAGS, "--quiet-period", "0.3", "--state-url", served.state_url
            )
            elapsed = time.perf_counter() - started
            if completed.returncode != 0:
                raise SystemExit(
                    "the features failed live:\n" + completed.stdout + completed.stderr
                )
            found = re.search(r"(\d+) scenarios: (\d+) passed", completed.stdout)
            live_count = int(found.group(2)) if found else 0
            live_best = min(live_best, elapsed)
    return world_best, world_count, live_best, live_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--world-seconds",
        type=float,
        default=3.0,
        help="how long the world runs the features in each round, before the live run",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    in_world([MAILINGLIST / "features"], LIVE_TAGS)  # imports, template compilation: once
    world, world_count, served, served_count = side_by_side(options.rounds, options.world_seconds)
    echo, echo_count = min(in_world(ECHO_FEATURES) for _ in range(options.rounds))

    def per_dozen(seconds: float, count: int) -> float:
        return seconds / max(count, 1) * 12

    print(f"{'run':<52}{'scenarios':>10}{'s/dozen':>9}{'ratio':>8}")
    print(
        f"{'mailing list, live against mailsim serve (baseline)':<52}{served_count:>10}"
        f"{per_dozen(served, served_count):>9.2f}{1:>8.1f}"
    )
    print(
        f"{'mailing list, same features in the world':<52}{world_count:>10}"
        f"{per_dozen(world, world_count):>9.2f}{served / world:>8.1f}"
    )
    print(
        f"{'step library echo features in the world':<52}{echo_count:>10}"
        f"{per_dozen(echo, echo_count):>9.2f}"
    )
    print("\ntarget: the world at least 20x faster than live on the same features")
    if options.json:
        options.json.write_text(
            json.dumps(
                {
                    "rounds": options.rounds,
                    "world_seconds": options.world_seconds,
                    "live_scenarios": served_count,
                    "world_scenarios": world_count,
                    "live_per_dozen": per_dozen(served, served_count),
                    "world_per_dozen": per_dozen(world, world_count),
                    "echo_scenarios": echo_count,
                    "echo_per_dozen": per_dozen(echo, echo_count),
                    "ratio": (served / max(served_count, 1)) / (world / max(world_count, 1)),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
