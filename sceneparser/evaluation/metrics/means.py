"""Exact means with ``statistics.mean`` semantics, streamed.

An exact rational sum and one correctly rounded division; the mean of ints is an int when it
is whole. Values are counted (value -> occurrences), so nothing per sample is kept, and two means of
disjoint parts of the samples merge exactly (``merge``: the counts add up; the order of the
samples never matters).
"""

from __future__ import annotations

from fractions import Fraction

from sceneparser.evaluation.metrics.primitives import f1


def small_mean(values: list):
    """``statistics.mean`` of a short list of floats, exactly (one correctly rounded division)."""
    first = values[0]
    n = len(values)
    if n == 1:
        return first
    for v in values:
        if v != first:
            break
    else:
        return first
    ratios = [v.as_integer_ratio() for v in values]
    den = max(d for _, d in ratios)  # all powers of two
    num = sum(a * (den // d) for a, d in ratios)
    return num / (den * n)  # int / int true division is correctly rounded


def int_mean(total: int, n: int):
    """``statistics.mean`` of n ints summing to ``total`` (0.0 when empty)."""
    if not n:
        return 0.0
    q = Fraction(total, n)
    return int(q) if q.denominator == 1 else float(q)


def _exact_mean(counts: dict, n: int):
    """Mean of a value -> occurrences histogram of floats holding ``n`` values (n > 0)."""
    if len(counts) == 1:
        return next(iter(counts))
    ratios = [(v.as_integer_ratio(), c) for v, c in counts.items()]
    den = max(d for (_, d), _ in ratios)
    num = sum(a * (den // d) * c for (a, d), c in ratios)
    return num / (den * n)


class FloatMean:
    """Streaming ``statistics.mean`` of floats: counts each distinct value, sums exactly at the end."""

    __slots__ = ("counts", "n")

    def __init__(self):
        self.counts: dict = {}
        self.n = 0

    def add(self, v) -> None:
        c = self.counts
        c[v] = c.get(v, 0) + 1
        self.n += 1

    def merge(self, other: "FloatMean") -> None:
        c = self.counts
        for v, k in other.counts.items():
            c[v] = c.get(v, 0) + k
        self.n += other.n

    def mean(self, empty=0.0):
        return _exact_mean(self.counts, self.n) if self.n else empty


class PairMean:
    """Macro (precision, recall) pairs -> ``{"precision", "recall", "f1"}`` (F1 of the means)."""

    __slots__ = ("counts",)

    def __init__(self):
        self.counts: dict = {}

    def add(self, p, r) -> None:
        key = (p, r)
        c = self.counts
        c[key] = c.get(key, 0) + 1

    def merge(self, other: "PairMean") -> None:
        c = self.counts
        for key, k in other.counts.items():
            c[key] = c.get(key, 0) + k

    def summary(self) -> dict:
        n = sum(self.counts.values())
        if not n:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        ps: dict = {}
        rs: dict = {}
        for (p, r), k in self.counts.items():
            ps[p] = ps.get(p, 0) + k
            rs[r] = rs.get(r, 0) + k
        p = _exact_mean(ps, n)
        r = _exact_mean(rs, n)
        return {"precision": p, "recall": r, "f1": f1(p, r)}
