"""How often the verdict rules flag a change that is not there, and find one that is.

usage: python benchmarks/verdict_rates.py [--pairs 1000] [--seed 1] [--cv 0.2] [--no-tighten]

For each sample size (5, 10 and 20 warm calls a side) it draws ``--pairs``
baseline/run pairs of lognormal delays (median 100 ms, coefficient of
variation ``--cv``) and feeds their per-call values to the verdict function
(sitegen.verdicts.row_verdict, default settings). A/A pairs come from one
distribution: every flag is false. A/B pairs have the run slowed by 20% and
40%: a regression flag is a detection, a win flag is the wrong way. Seeded, so
every run prints the same table. ``--no-tighten`` keeps the five-call
thresholds at every sample size, to show what the tightening at twenty buys.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sitegen.verdicts import Sample, Settings, row_verdict

SIZES = (5, 10, 20)
CASES = (("A/A", 1.0), ("A/B +20%", 1.2), ("A/B +40%", 1.4))


def delays(rng: random.Random, n: int, median: float, cv: float) -> tuple[float, ...]:
    sigma = math.sqrt(math.log(1 + cv * cv))
    return tuple(median * math.exp(rng.gauss(0.0, sigma)) for _ in range(n))


def rates(
    n: int, slowdown: float, pairs: int, seed: int, cv: float, settings: Settings
) -> dict[str, float]:
    rng = random.Random(f"{seed}:{n}:{slowdown}")
    counts: dict[str, int] = {}
    for _ in range(pairs):
        base = delays(rng, n, 100.0, cv)
        now = delays(rng, n, 100.0 * slowdown, cv)
        row = row_verdict(
            "c",
            "p",
            "b",
            "b",
            Sample(n, 0, {"ttft": base}, (64.0,) * n),
            Sample(n, 0, {"ttft": now}, (64.0,) * n),
            [],
            settings,
        )
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    return {k: v / pairs for k, v in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cv", type=float, default=0.2)
    parser.add_argument(
        "--no-tighten", action="store_true", help="keep the five-call thresholds at every n"
    )
    args = parser.parse_args()
    s = Settings()
    if args.no_tighten:
        s = dataclasses.replace(s, tightened=s.ttft_regression)
    print(
        f"{args.pairs} pairs per line, lognormal delays with CV {args.cv:.0%}; "
        f"alpha {s.alpha}, min_calls {s.min_calls}, threshold {s.ttft_regression:.0%}, "
        f"{s.tightened:.0%} from {s.tighten_at} calls a side"
    )
    cols = ("regression", "win", "below threshold", "within noise", "too few calls")
    head = f"{'case':<10} {'n':>3}  " + "  ".join(f"{c:>15}" for c in cols)
    print(head)
    print("-" * len(head))
    for name, slowdown in CASES:
        for n in SIZES:
            r = rates(n, slowdown, args.pairs, args.seed, args.cv, s)
            cells = "  ".join(f"{r.get(c, 0.0):>15.1%}" for c in cols)
            print(f"{name:<10} {n:>3}  {cells}")


if __name__ == "__main__":
    main()
