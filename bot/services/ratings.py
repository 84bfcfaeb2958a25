"""The arena leaderboard's statistics (``/top``): a Bradley–Terry fit of the counted votes.

Input: per unordered pair of models, how often each side won and how often they tied
(``PairCounts``), as kept in the Redis hash ``arena:pairs:<bot id>`` (``vote_field`` names
the field a vote increments, ``parse_pairs`` reads the hash back). A tie counts as half a
win to each side, and "both bad" is a tie. So the fit reads O(models²) counters and costs
O(models³) per Newton iteration (a handful of them): nothing in it grows with the number of
votes.

Model: model i beats model j with probability p_i / (p_i + p_j), the strength p_i = e^θ_i.
``fit`` maximises the likelihood in θ by Newton's method with a backtracking line search
(the log-likelihood is concave), in the gauge mean θ = 0, to a step below 1e-12
natural-log units or 100 iterations. In doubles it is exact well past 10^12 battles a
pair; from about 10^15 rounding blurs what only the prior fixes (it still returns finite
ratings).

Regularisation (``prior``, default 1): the MLE does not exist when a model never lost
(its θ goes to +∞), never won, or when the comparison graph falls apart into groups that
never met (their offsets are arbitrary). So each rated model also plays ``prior`` virtual
battles, all ties, against a virtual opponent of average strength (θ = mean θ, the
geometric mean of the strengths). With x = θ_i − mean θ that adds
``prior · (log σ(x) + log σ(−x)) / 2`` to the log-likelihood for each model: a weak prior
centred on the average (near it, a normal of standard deviation 2/√prior in θ, ±350 Elo
points for prior 1; linear, so weaker still, in the tails) that keeps every rating finite
and the fit unique, and is negligible once a model has a few dozen battles. Like the
likelihood it depends on differences of θ only. The offset between groups that never met
rests on this prior alone, and their intervals say so (they are very wide). ``prior=0`` is
the plain MLE (exact, e.g. two models with w wins and l losses are 400·log10(w/l) apart);
it raises ``ValueError`` when the MLE does not exist.

Scale: rating = 1000 + 400·log10(p_i / geometric mean of the p), i.e. 400/ln 10 per unit
of θ relative to the mean θ, so the ratings of the rated models average exactly 1000 and a
400-point gap means 10:1 odds, as in Elo.

Intervals: ±1.96 standard errors from the Fisher information of θ (for this model the
observed and the expected information are equal): the variance of θ_i − mean θ, the
quantity the rating shows, from the inverse of the information matrix (with ``prior=0``,
whose information is singular along "all θ up by the same amount", the pseudo-inverse,
i.e. the variance under the constraint mean θ = 0). They are symmetric on the Elo scale
and shrink like 1/√battles. Because each rating is relative to the mean, a model with few
battles (an uncertain θ) widens every interval through the mean, and much: a newcomer with
3 battles takes two models with 80 battles between them from ±38 to ±126-132 points.
``anchor`` (the models whose mean is 1000, e.g. the non-provisional ones) keeps such models
out of the mean.

Models with no battles (only possible when ``models`` lists them) are not fitted: they come
last, at 1000 with an infinite interval, provisional.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

ELO_PER_NAT = 400 / math.log(10)  # rating points per natural-log unit of strength
MEAN_RATING = 1000.0
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
PROVISIONAL_BATTLES = 10  # fewer battles than this: listed apart as provisional
DEFAULT_PRIOR = 1.0  # virtual tied battles per model against the average (see the module)

MAX_ITERATIONS = 100
STEP_TOLERANCE = 1e-12  # natural-log units of strength (4e-10 rating points)
PIVOT_FLOOR = 1e-15  # of a diagonal entry: a rounding guard in the Cholesky factor
SEPARATOR = "|"
Outcome = Literal["a", "b", "tie", "both_bad"]
_KIND_OF: dict[Outcome, str] = {"a": "w", "b": "l", "tie": "t", "both_bad": "t"}
_Field = TypeVar("_Field", bound=bytes | str)  # a hash field as redis-py hands it back


@dataclass(frozen=True, slots=True)
class PairCounts:
    """The counted battles between two models ``a`` and ``b`` (the key they are stored
    under, ``(a, b)``): ``wins`` of a over b, ``losses`` of a to b, ``ties`` (both bad
    included)."""

    wins: int = 0
    losses: int = 0
    ties: int = 0

    def __post_init__(self) -> None:
        if min(self.wins, self.losses, self.ties) < 0:
            raise ValueError(f"negative battle counts: {self}")

    @property
    def battles(self) -> int:
        return self.wins + self.losses + self.ties

    def swapped(self) -> PairCounts:
        """The same battles seen from b's side."""
        return PairCounts(self.losses, self.wins, self.ties)

    def __add__(self, other: PairCounts) -> PairCounts:
        return PairCounts(
            self.wins + other.wins, self.losses + other.losses, self.ties + other.ties
        )


Pairs = Mapping[tuple[str, str], PairCounts]


@dataclass(frozen=True, slots=True)
class Rating:
    """One model on the leaderboard. ``rating`` is on the Elo-like scale (mean 1000 over
    the rated models, or over ``fit``'s ``anchor``), ``low``/``high`` its 95% interval on
    the same scale (±inf for a model with no battles), ``battles`` the counted battles it
    took part in (a tie once), ``provisional`` when those are fewer than 10."""

    model: str
    rating: float
    low: float
    high: float
    battles: int
    provisional: bool


# -- the Redis hash ------------------------------------------------------------------------


def vote_field(model_a: str, model_b: str, outcome: Outcome) -> str:
    """The field of ``arena:pairs:<bot id>`` that one counted vote increments by 1.

    ``outcome`` is the vote about the battle as shown (``"a"``: model_a is better, ``"b"``:
    model_b is, ``"tie"``, ``"both_bad"``). Fields are ``"<x>|<y>|w"``, ``"<x>|<y>|l"``,
    ``"<x>|<y>|t"`` with x < y (the pair in sorted order, whichever side each was shown
    on): wins of x over y, wins of y over x, ties (both bad included)."""
    if model_a == model_b:
        raise ValueError(f"a battle needs two different models, got {model_a!r} twice")
    for model in (model_a, model_b):
        if not model or SEPARATOR in model:
            raise ValueError(f"model id {model!r} cannot be stored: empty or has {SEPARATOR!r}")
    kind = _KIND_OF[outcome]
    if model_a > model_b:
        model_a, model_b = model_b, model_a
        kind = {"w": "l", "l": "w"}.get(kind, kind)
    return SEPARATOR.join((model_a, model_b, kind))


def parse_pairs(raw: Mapping[_Field, bytes | str | int]) -> dict[tuple[str, str], PairCounts]:
    """``HGETALL arena:pairs:<bot id>`` (bytes or str, as redis-py returns it) as
    ``PairCounts`` keyed by ``(x, y)`` with x < y. Fields are ``"<x>|<y>|w"``, ``…|l"``
    or ``…|t"`` as ``vote_field`` writes them; values non-negative integers. A field that
    is not exactly that (not UTF-8, wrong number of parts, an empty or repeated id, another
    kind, a value that is not a non-negative integer) is skipped, so one bad field cannot
    take ``/top`` down. A field written with x > y is read from the other side."""
    counts: dict[tuple[str, str], list[int]] = {}
    for key, value in raw.items():
        try:
            field = key.decode() if isinstance(key, bytes) else key
            text = value.decode() if isinstance(value, bytes) else value
            if isinstance(text, bool):
                continue
            number = int(text)
        except (UnicodeDecodeError, ValueError, TypeError):
            continue
        parts = field.split(SEPARATOR)
        if len(parts) != 3 or number < 0:
            continue
        a, b, kind = parts
        if not a or not b or a == b or kind not in ("w", "l", "t"):
            continue
        if a > b:
            a, b = b, a
            kind = {"w": "l", "l": "w"}.get(kind, kind)
        slot = counts.setdefault((a, b), [0, 0, 0])
        slot["wlt".index(kind)] += number
    return {pair: PairCounts(*values) for pair, values in counts.items()}


# -- the fit -------------------------------------------------------------------------------


def fit(
    pairs: Pairs,
    models: Iterable[str] | None = None,
    *,
    prior: float = DEFAULT_PRIOR,
    anchor: Iterable[str] | None = None,
) -> list[Rating]:
    """The leaderboard: every model's rating, interval and battles, best first.

    ``pairs`` maps a pair of models ``(a, b)`` to its ``PairCounts`` from a's side; either
    order of a key is accepted, and ``(a, b)`` and ``(b, a)`` both present add up.
    ``models``: the models to rate (battles against any other model are left out);
    ``None``: every model with at least one battle. A listed model without battles comes
    last, unrated (1000, interval ±inf). ``prior``: virtual tied battles per model against
    the average, see the module docstring; 0 fits the plain MLE and raises ``ValueError``
    when it does not exist (a model that never won or never lost, groups that never met).
    ``anchor``: the models whose ratings average 1000 (those of them that are rated);
    ``None``, or none of them rated: every rated model.
    """
    if prior < 0 or not math.isfinite(prior):
        raise ValueError(f"prior must be finite and >= 0, got {prior}")
    merged = _merge(pairs)
    wanted = None if models is None else set(models)
    if wanted is not None:
        merged = {k: v for k, v in merged.items() if k[0] in wanted and k[1] in wanted}
    battles: dict[str, int] = {}
    for (a, b), c in merged.items():
        if c.battles:
            battles[a] = battles.get(a, 0) + c.battles
            battles[b] = battles.get(b, 0) + c.battles
    rated = sorted(battles)
    index = {m: i for i, m in enumerate(rated)}
    k = len(rated)
    # n[i][j]: battles between i and j; won[i][j]: i's wins over j, a tie as half a win
    n = [[0.0] * k for _ in range(k)]
    won = [[0.0] * k for _ in range(k)]
    for (a, b), c in merged.items():
        if c.battles:
            i, j = index[a], index[b]
            n[i][j] = n[j][i] = float(c.battles)
            won[i][j] = c.wins + c.ties / 2
            won[j][i] = c.losses + c.ties / 2
    if prior == 0:
        _check_mle_exists(rated, won)
    theta = _maximise(n, won, prior)
    anchored = sorted({index[m] for m in anchor or () if m in index}) or list(range(k))
    variances = _variances(n, theta, prior, anchored)
    mean = sum(theta[i] for i in anchored) / len(anchored) if k else 0.0
    board = []
    for m, t, var in zip(rated, theta, variances, strict=True):
        rating = MEAN_RATING + ELO_PER_NAT * (t - mean)
        half = Z95 * ELO_PER_NAT * math.sqrt(max(var, 0.0))
        played = battles[m]
        board.append(
            Rating(m, rating, rating - half, rating + half, played, played < PROVISIONAL_BATTLES)
        )
    board.sort(key=lambda r: (-r.rating, r.model))
    unrated = sorted((wanted or set()) - set(rated))
    board += [Rating(m, MEAN_RATING, -math.inf, math.inf, 0, True) for m in unrated]
    return board


def _merge(pairs: Pairs) -> dict[tuple[str, str], PairCounts]:
    """The pairs keyed ``(a, b)`` with a < b, the two orders of a key added up."""
    merged: dict[tuple[str, str], PairCounts] = {}
    for (a, b), counts in pairs.items():
        if a == b:
            raise ValueError(f"a model cannot battle itself: {a!r}")
        key, oriented = ((a, b), counts) if a < b else ((b, a), counts.swapped())
        merged[key] = merged[key] + oriented if key in merged else oriented
    return merged


def _check_mle_exists(rated: list[str], won: list[list[float]]) -> None:
    """The plain MLE exists iff every model can be reached from every other by a chain of
    "beat (or tied)" (Ford 1957; Hunter 2004): the directed graph i -> j when i took at
    least half a win from j is strongly connected."""
    k = len(rated)
    if k < 2:
        return
    for edges in (
        [[j for j in range(k) if won[i][j] > 0] for i in range(k)],  # i beat j
        [[j for j in range(k) if won[j][i] > 0] for i in range(k)],  # j beat i
    ):
        seen = {0}
        todo = [0]
        while todo:
            for j in edges[todo.pop()]:
                if j not in seen:
                    seen.add(j)
                    todo.append(j)
        if len(seen) < k:
            missing = ", ".join(rated[j] for j in range(k) if j not in seen)
            raise ValueError(
                f"no maximum-likelihood fit without a prior: {rated[0]} and {missing} are not "
                "linked both ways by wins (a model never won or never lost, or groups never "
                "met); use prior > 0"
            )


def _log_sigmoid(x: float) -> float:
    """log(1 / (1 + e^-x)) without overflow."""
    return -(math.log1p(math.exp(x)) - x) if x < 0 else -math.log1p(math.exp(-x))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


def _spread(x: float) -> float:
    """σ(x)·σ(−x), the variance of one battle's outcome, without the cancellation of
    σ·(1 − σ) far in the tails (a pair with a billion battles, all one way)."""
    e = math.exp(-abs(x))
    return e / (1 + e) ** 2


def _centred(theta: list[float]) -> list[float]:
    mean = sum(theta) / len(theta)
    return [t - mean for t in theta]


def _log_likelihood(
    n: list[list[float]], won: list[list[float]], prior: float, theta: list[float]
) -> float:
    """The penalised log-likelihood: the wins (half wins for ties) and each model's
    ``prior`` virtual ties against the average (θ_i − mean θ). The same for θ + c·1."""
    k = len(theta)
    total = 0.0
    for i in range(k):
        ti, ni, wi = theta[i], n[i], won[i]
        for j in range(i + 1, k):
            if ni[j]:
                d = ti - theta[j]
                total += wi[j] * _log_sigmoid(d) + won[j][i] * _log_sigmoid(-d)
    if prior:
        total += sum(prior / 2 * (_log_sigmoid(x) + _log_sigmoid(-x)) for x in _centred(theta))
    return total


def _information(
    n: list[list[float]], won: list[list[float]], prior: float, theta: list[float]
) -> tuple[list[float], list[list[float]]]:
    """The gradient of the penalised log-likelihood and its information (minus the
    Hessian) plus s·11ᵀ/k, s the mean diagonal. Both terms are unchanged by θ + c·1, so the
    gradient sums to 0 and the information is singular along 1: the added term makes it
    positive definite without touching any direction ⟂ 1 (1 is an eigenvector), which is
    all that the Newton step (``_maximise``) and the variances (``_variances``) use.

    With x = θ − mean θ the prior is Σ h(x_i), h(x) = prior·(log σ(x) + log σ(−x))/2:
    gradient h'(x_j) − mean h'(x), information P·diag(−h''(x))·P with P = I − 11ᵀ/k."""
    k = len(theta)
    grad = [0.0] * k
    info = [[0.0] * k for _ in range(k)]
    for i in range(k):
        ti, ni, wi, row = theta[i], n[i], won[i], info[i]
        g = 0.0
        for j in range(k):
            if ni[j] and j != i:
                d = ti - theta[j]
                g += wi[j] - ni[j] * _sigmoid(d)
                w = ni[j] * _spread(d)
                row[j] -= w
                row[i] += w
        grad[i] = g
    if prior:
        x = _centred(theta)
        slopes = [prior * (0.5 - _sigmoid(v)) for v in x]
        mean_slope = sum(slopes) / k
        curv = [prior * _spread(v) for v in x]
        total = sum(curv) / k**2
        for i in range(k):
            grad[i] += slopes[i] - mean_slope
            row = info[i]
            for j in range(k):
                row[j] += total - (curv[i] + curv[j]) / k
            row[i] += curv[i]
    gauge = max(sum(info[i][i] for i in range(k)) / k, 1.0) / k
    for row in info:
        for j in range(k):
            row[j] += gauge
    return grad, info


def _maximise(n: list[list[float]], won: list[list[float]], prior: float) -> list[float]:
    """θ (mean 0) maximising the penalised log-likelihood: Newton steps, halved until the
    likelihood rises enough (Armijo) while far from the top. The gradient sums to 0, so the
    step solved with ``_information``'s matrix has mean 0 too: it is the Newton step within
    mean θ = 0 (its mean, rounding only, is taken out)."""
    k = len(n)
    theta = [0.0] * k
    if k == 0:
        return theta
    current = _log_likelihood(n, won, prior, theta)
    for _ in range(MAX_ITERATIONS):
        grad, info = _information(n, won, prior, theta)
        step = _centred(_solve(_cholesky(info), grad))
        decrement = sum(g * s for g, s in zip(grad, step, strict=True))  # >= 0
        t = 1.0
        if decrement > 1e-8:  # far from the top: the full step might overshoot
            while True:
                trial = [x + t * s for x, s in zip(theta, step, strict=True)]
                value = _log_likelihood(n, won, prior, trial)
                if value >= current + 1e-4 * t * decrement or t < 1e-10:
                    break
                t /= 2
            theta, current = trial, value
        else:  # quadratic convergence: the likelihood is flat to rounding here
            theta = [x + s for x, s in zip(theta, step, strict=True)]
            current = _log_likelihood(n, won, prior, theta)
        if max(abs(t * s) for s in step) < STEP_TOLERANCE:
            break
    return _centred(theta)


def _variances(
    n: list[list[float]], theta: list[float], prior: float, anchored: list[int]
) -> list[float]:
    """The variance of θ_i − the mean θ over ``anchored`` (S) for each i: c_iᵀ I⁺ c_i with
    c_i = e_i − 1_S/|S| and I⁺ the pseudo-inverse of the information. ``_information``'s
    matrix is I + s·11ᵀ/k, whose inverse is I⁺ + 11ᵀ/(s·k); c_i ⟂ 1, so c_iᵀ (its
    inverse) c_i is the same. With L Lᵀ = that matrix and X = L⁻¹ it is |X c_i|² =
    |X e_i − X 1_S/|S||²: O(k³) in all."""
    k = len(theta)
    if k == 0:
        return []
    _, info = _information(n, [[0.0] * k for _ in range(k)], prior, theta)
    inverse = _lower_inverse(_cholesky(info))
    means = [sum(row[j] for j in anchored) / len(anchored) for row in inverse]
    return [sum((row[i] - m) ** 2 for row, m in zip(inverse, means, strict=True)) for i in range(k)]


# -- small dense linear algebra ------------------------------------------------------------


def _cholesky(a: list[list[float]]) -> list[list[float]]:
    """Lower-triangular L with L Lᵀ = a (symmetric positive definite). A pivot that
    rounding took below ``PIVOT_FLOOR`` times its diagonal entry is raised to that: the
    information is positive definite, but with ~1e16 battles in a pair that is nothing to
    the prior's curvature it is near singular in doubles, and ``/top`` must not fail."""
    k = len(a)
    low = [[0.0] * k for _ in range(k)]
    for i in range(k):
        li = low[i]
        for j in range(i + 1):
            lj = low[j]
            s = a[i][j] - sum(x * y for x, y in zip(li[:j], lj[:j], strict=True))
            if i == j:
                li[i] = math.sqrt(max(s, PIVOT_FLOOR * a[i][i]))
            else:
                li[j] = s / lj[j]
    return low


def _solve(low: list[list[float]], b: list[float]) -> list[float]:
    """x with L Lᵀ x = b: forward, then back substitution."""
    k = len(b)
    y = [0.0] * k
    for i in range(k):
        li = low[i]
        y[i] = (b[i] - sum(li[j] * y[j] for j in range(i))) / li[i]
    x = [0.0] * k
    for i in reversed(range(k)):
        x[i] = (y[i] - sum(low[j][i] * x[j] for j in range(i + 1, k))) / low[i][i]
    return x


def _lower_inverse(low: list[list[float]]) -> list[list[float]]:
    """L⁻¹ (lower triangular), column by column by forward substitution."""
    k = len(low)
    inv = [[0.0] * k for _ in range(k)]
    for c in range(k):
        inv[c][c] = 1 / low[c][c]
        for i in range(c + 1, k):
            li = low[i]
            inv[i][c] = -sum(li[j] * inv[j][c] for j in range(c, i)) / li[i]
    return inv
