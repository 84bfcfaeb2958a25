"""``/top``'s fit time: 20 and 50 models, 1,000 vs 1,000,000 counted votes.

``/top`` reads the per-pair counters of ``arena:pairs:<bot id>`` (``HGETALL``), parses them
(``bot.services.ratings.parse_pairs``) and fits Bradley–Terry (``fit``). The counters are
O(models²) whatever the number of votes, so the time should not depend on the votes: this
bench times parse + fit on hashes holding 1,000 and 1,000,000 votes for the same models and
compares them.

The votes are spread evenly over every pair of models; in each pair 10% are ties and the
rest split as true strengths evenly spaced from e^-2 to e^2 expect (rounded), so the
million-vote fits must recover the true order (the bench's own check, with the mean of
1000 and finite intervals). With fewer votes than pairs (1,000 among 50 models' 1,225
pairs) a pair has 0 or 1 vote, which the stronger model wins: those boards are crude (a
model that never lost tops them, on the prior); their point is the time.

Newton iterations are counted by wrapping the module's information function (one call per
iteration, one for the intervals; ms/iteration divides the fit time by those calls). Times
are the median over ``--repeats`` runs, CPU time of this process (``time.process_time``),
after one warm-up run.

Goals: for each model count, fit time with the many votes at most 1.5x that with the few
(it does not grow with the votes); 20 models at most 50 ms; 50 models at most 250 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import statistics
import sys
import time
from collections.abc import Iterator

from bench import kit
from bot.services import ratings

QUICK = {"repeats": 3}
TIE_SHARE = 0.1
GOALS_MS = {20: 50.0, 50: 250.0}  # fit time at most, per model count
RATIO_GOAL = 1.5  # many votes / few votes


def true_strengths(count: int) -> dict[str, float]:
    """θ evenly spaced from -2 to 2: model ``m00`` weakest."""
    return {f"m{i:02d}": -2 + 4 * i / max(count - 1, 1) for i in range(count)}


def redis_hash(theta: dict[str, float], votes: int) -> dict[bytes, bytes]:
    """What ``HGETALL arena:pairs:<bot id>`` returns after ``votes`` counted votes spread
    over every pair: the ``"<a>|<b>|w|l|t"`` fields ``vote_field`` names, as bytes."""
    pairs = list(itertools.combinations(sorted(theta), 2))
    share, extra = divmod(votes, len(pairs))
    raw: dict[bytes, bytes] = {}
    for n, (a, b) in enumerate(pairs):
        battles = share + (n < extra)
        ties = round(TIE_SHARE * battles)
        decisive = battles - ties
        wins = round(decisive / (1 + math.exp(theta[b] - theta[a])))
        counts: list[tuple[ratings.Outcome, int]] = [
            ("a", wins),
            ("b", decisive - wins),
            ("tie", ties),
        ]
        for outcome, count in counts:
            if count:
                field = ratings.vote_field(a, b, outcome)
                raw[field.encode()] = str(count).encode()
    return raw


@contextlib.contextmanager
def counting_iterations() -> Iterator[list[int]]:
    """Counts calls of ``ratings._information`` while in the block (Newton iterations
    plus one for the intervals)."""
    calls = [0]
    original = ratings._information

    def counted(
        n: list[list[float]], won: list[list[float]], prior: float, theta: list[float]
    ) -> tuple[list[float], list[list[float]]]:
        calls[0] += 1
        return original(n, won, prior, theta)

    ratings._information = counted
    try:
        yield calls
    finally:
        ratings._information = original


def measure(raw: dict[bytes, bytes], repeats: int) -> tuple[float, float, list[ratings.Rating]]:
    """Median CPU seconds of parse_pairs and of fit, and the board."""
    board = ratings.fit(ratings.parse_pairs(raw))  # warm-up
    parse_times, fit_times = [], []
    for _ in range(repeats):
        started = time.process_time()
        pairs = ratings.parse_pairs(raw)
        parsed = time.process_time()
        board = ratings.fit(pairs)
        fit_times.append(time.process_time() - parsed)
        parse_times.append(parsed - started)
    return statistics.median(parse_times), statistics.median(fit_times), board


def run(args: argparse.Namespace) -> kit.Table:
    table = kit.Table()
    print(
        f"\nbench.arena_fit: parse + Bradley–Terry fit of the arena counters, median CPU of "
        f"{args.repeats} runs after 1 warm-up; {kit.machine()}.\n"
    )
    head = f"{'models':>6} | {'votes':>9} | {'fields':>6} | {'parse ms':>8} | "
    head += f"{'fit ms':>7} | {'iterations':>10} | {'ms/iteration':>12} | {'top':>4} | "
    head += f"{'top rating (95%)':>18}"
    print(head + "\n" + "-" * len(head))
    for models in args.models:
        theta = true_strengths(models)
        fit_ms: dict[int, float] = {}
        for votes in (args.few, args.many):
            raw = redis_hash(theta, votes)
            parse_s, fit_s, board = measure(raw, args.repeats)
            with counting_iterations() as calls:
                ratings.fit(ratings.parse_pairs(raw))
            fit_ms[votes] = fit_s * 1e3
            top = board[0]
            print(
                f"{models:>6} | {votes:>9,} | {len(raw):>6} | {parse_s * 1e3:>8.2f} | "
                f"{fit_s * 1e3:>7.2f} | {calls[0] - 1:>10} | {fit_s * 1e3 / calls[0]:>12.2f} | "
                f"{top.model:>4} | "
                f"{top.rating:>6.0f} ({top.low:.0f}-{top.high:.0f})"
            )
            mean = sum(r.rating for r in board) / len(board)
            finite = all(math.isfinite(r.low) and math.isfinite(r.high) for r in board)
            fine = len(board) == models and abs(mean - 1000) < 1e-6 and finite
            table.add(
                f"{models} models, {votes:,} votes: all rated, mean 1000, finite intervals",
                f"mean {mean:.6f}",
                "",
                fine,
                check=True,
            )
            if votes == args.many:
                order = [r.model for r in board]
                expected = sorted(theta, key=lambda m: -theta[m])
                table.add(
                    f"{models} models, {votes:,} votes: the true order",
                    "yes" if order == expected else "no",
                    "",
                    order == expected,
                    check=True,
                )
        ratio = fit_ms[args.many] / fit_ms[args.few]
        table.add(
            f"{models} models: fit time {args.many:,} / {args.few:,} votes",
            f"{ratio:.2f}x",
            f"<= {RATIO_GOAL}x",
            ratio <= RATIO_GOAL,
        )
        if models in GOALS_MS:
            slowest = max(fit_ms.values())
            table.add(
                f"{models} models: fit time",
                f"{slowest:.1f} ms",
                f"<= {GOALS_MS[models]:g} ms",
                slowest <= GOALS_MS[models],
            )
    print()
    table.print()
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per case")
    parser.add_argument("--few", type=int, default=1_000, help="votes in the small case")
    parser.add_argument("--many", type=int, default=1_000_000, help="votes in the large case")
    parser.add_argument(
        "--models",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[20, 50],
        help="comma-separated model counts (default 20,50)",
    )
    args = kit.parse(parser, argv, QUICK)
    if args.repeats < 1 or args.few < 1 or args.many < 1 or min(args.models) < 2:
        parser.error("repeats and votes must be >= 1, model counts >= 2")
    table = run(args)
    return kit.verdict(args, table.goals, table.checks)


if __name__ == "__main__":
    sys.exit(main())
