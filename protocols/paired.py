"""Paired differences against a baseline, with 95% intervals: the table a reviewer asks for.

Two runs pair when they share a task configuration and a seed: the same task order, the same
initialisation and data order up to the method, so most run-to-run noise cancels in their
difference. For each arm: the mean of (arm - baseline) over its pairs, a two-sided 95%
Student-t interval (mean +- t(0.975, n-1) * sd / sqrt(n), sample sd), how many pairs favour
the arm, and the runs that found no partner (listed, never silently dropped).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

# Two-sided 95% quantiles of Student's t, t(0.975, df), from standard tables.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
         16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074,
         23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045,
         30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
Z_975 = 1.960


def t_quantile_975(df: int) -> float:
    """t(0.975, df); between tabled values, linear in 1/df (exact to 3 decimals here)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df in T_975:
        return T_975[df]
    lower = max(d for d in T_975 if d < df)
    upper = min((d for d in T_975 if d > df), default=None)
    far, far_value = (math.inf, Z_975) if upper is None else (upper, T_975[upper])
    weight = (1 / lower - 1 / df) / (1 / lower - (0 if far == math.inf else 1 / far))
    return T_975[lower] + weight * (far_value - T_975[lower])


@dataclass
class PairedDifference:
    """arm - baseline over the pairs where both define the value."""
    differences: list[float]

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.differences) if self.differences else math.nan

    @property
    def half_width(self) -> float:
        """Half the 95% interval; NaN with fewer than 2 pairs."""
        if self.n < 2:
            return math.nan
        return t_quantile_975(self.n - 1) * statistics.stdev(self.differences) / math.sqrt(self.n)

    @property
    def interval(self) -> tuple[float, float]:
        return self.mean - self.half_width, self.mean + self.half_width

    @property
    def wins(self) -> int:
        return sum(d > 0 for d in self.differences)


@dataclass
class Pairing:
    """An arm's runs matched to the baseline's by (configuration, seed)."""
    pairs: list[tuple[dict, dict]] = field(default_factory=list)     # (arm run, baseline run)
    arm_only: list[tuple] = field(default_factory=list)              # keys without a baseline
    baseline_only: list[tuple] = field(default_factory=list)         # keys the arm lacks


def pair_key(result: dict) -> tuple:
    config = result["config"]
    return config.get("configuration"), config.get("seed")


def pair_runs(arm: list[dict], baseline: list[dict]) -> Pairing:
    by_key = {pair_key(r): r for r in baseline}
    arm_keys = {pair_key(r) for r in arm}
    return Pairing(
        pairs=[(r, by_key[pair_key(r)]) for r in arm if pair_key(r) in by_key],
        arm_only=sorted((pair_key(r) for r in arm if pair_key(r) not in by_key), key=str),
        baseline_only=sorted((k for k in by_key if k not in arm_keys), key=str))


def paired_difference(pairing: Pairing, value) -> PairedDifference:
    """``value(run)`` -> float (NaN where undefined); pairs where either is NaN are left out."""
    differences = []
    for arm_run, baseline_run in pairing.pairs:
        a, b = value(arm_run), value(baseline_run)
        if math.isfinite(a) and math.isfinite(b):
            differences.append(a - b)
    return PairedDifference(differences)


def format_difference(difference: PairedDifference) -> str:
    """"+0.120 [+0.050, +0.190] (4/5)": mean, 95% interval, pairs favouring the arm / pairs."""
    if difference.n == 0:
        return "—"
    if difference.n == 1:
        return f"{difference.mean:+.3f} (1 pair)"
    low, high = difference.interval
    return f"{difference.mean:+.3f} [{low:+.3f}, {high:+.3f}] ({difference.wins}/{difference.n})"
