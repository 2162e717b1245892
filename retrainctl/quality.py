"""Pure model-quality math: per-feature reference statistics, the population stability index
(PSI) of a sample against them, and the performance and drift verdicts. Values in, values out:
no files, no clock, no numpy or scikit-learn, so a check that only compares cached numbers stays cheap."""
import bisect
import math
from collections import Counter
from dataclasses import dataclass
from typing import Optional

from .triggers import degradation

MISSING = "<missing>"     # the bin of absent values, numeric and categorical alike
OTHER = "<other>"         # categories beyond the reference's top ones, or never seen at training
BINS = 10                 # numeric features: deciles of the reference
MAX_CATEGORIES = 50       # keeps metadata.json small for high-cardinality columns
EPS = 1e-4                # floor for empty bins, so PSI stays finite


def is_missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def to_number(text):
    """A CSV cell as a float, or None when it is empty or not a finite-or-NaN number."""
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def quantile(sorted_values, q):
    """Linear-interpolated quantile of an already sorted, non-empty list (numpy's default)."""
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def numeric_reference(values, bins=BINS):
    """Reference statistics of a numeric feature: inner quantile edges and the share of values
    in each bin (plus a last bin for missing values)."""
    present = sorted(float(v) for v in values if not is_missing(v))
    edges = []
    if present:
        for i in range(1, bins):
            edge = quantile(present, i / bins)
            if not edges or edge > edges[-1]:
                edges.append(edge)
    stats = {"kind": "numeric", "edges": edges}
    stats["proportions"] = histogram(stats, values)
    return stats


def categorical_reference(values, max_categories=MAX_CATEGORIES):
    """Reference statistics of a categorical feature: the share of each (top) category;
    the rest is lumped into OTHER."""
    counts = Counter(MISSING if is_missing(v) else str(v) for v in values)
    total = sum(counts.values()) or 1
    top = counts.most_common(max_categories)
    categories = [c for c, _ in top]
    proportions = [n / total for _, n in top]
    rest = total - sum(n for _, n in top)
    if rest and counts:
        categories.append(OTHER)
        proportions.append(rest / total)
    return {"kind": "categorical", "categories": categories, "proportions": proportions}


def _categorical_bins(stats):
    categories = list(stats["categories"])
    return categories if OTHER in categories else categories + [OTHER]


def expected(stats):
    """The reference proportions, aligned with `histogram`'s bins."""
    if stats["kind"] == "numeric":
        return list(stats["proportions"])
    props = list(stats["proportions"])
    return props + [0.0] * (len(_categorical_bins(stats)) - len(props))


def histogram(stats, values):
    """The share of `values` in each bin of the reference `stats` (same order as `expected`)."""
    values = list(values)
    if stats["kind"] == "numeric":
        edges = stats["edges"]
        counts = [0] * (len(edges) + 2)
        for v in values:
            counts[-1 if is_missing(v) else bisect.bisect_right(edges, float(v))] += 1
    else:
        bins = _categorical_bins(stats)
        index = {c: i for i, c in enumerate(bins)}
        other = index[OTHER]
        counts = [0] * len(bins)
        for v in values:
            counts[index.get(MISSING if is_missing(v) else str(v), other)] += 1
    total = len(values) or 1
    return [n / total for n in counts]


def psi(expected_props, actual_props, eps=EPS):
    """Population stability index: sum over bins of (actual - expected) * ln(actual / expected),
    with empty bins floored at `eps`. 0 = same distribution; > 0.2 is commonly read as a shift."""
    if len(expected_props) != len(actual_props):
        raise ValueError(f"bin counts differ: {len(expected_props)} vs {len(actual_props)}")
    total = 0.0
    for e, a in zip(expected_props, actual_props):
        e, a = max(e, eps), max(a, eps)
        total += (a - e) * math.log(a / e)
    return total


def reference_stats(columns, numeric):
    """{feature: stats} for {feature: values}; `numeric` names the features binned by quantiles."""
    return {name: numeric_reference(values) if name in numeric else categorical_reference(values)
            for name, values in columns.items()}


def feature_psi(reference, columns):
    """{feature: PSI} of a sample {feature: values} against reference statistics."""
    return {name: psi(expected(stats), histogram(stats, columns[name]))
            for name, stats in reference.items() if name in columns}


def drifted(psis, threshold):
    """The features whose PSI exceeds `threshold`, worst first."""
    return dict(sorted(((f, v) for f, v in psis.items() if v > threshold), key=lambda kv: -kv[1]))


@dataclass(frozen=True)
class Verdict:
    """What recent data says about the current model: `degraded`, `ok` or `insufficient`
    (not enough evidence), with the numbers behind it."""

    state: str
    text: str
    degradation: Optional[float] = None


def performance_verdict(metric, baseline, current, rows, higher_is_better, threshold, min_rows, source):
    """Compare the score on recent labelled rows with the holdout baseline, in the metric's direction."""
    if rows < min_rows:
        return Verdict("insufficient", f"not enough evidence: {rows} labelled row(s) in {source}, "
                                       f"min_eval_rows is {min_rows}")
    worse = degradation(baseline, current, higher_is_better)
    numbers = (f"{metric} {current:.4g} on {rows} rows of {source} vs baseline {baseline:.4g} "
               f"({_relative(worse)}, performance_threshold {threshold:g})")
    if worse > threshold:
        return Verdict("degraded", f"performance degraded: {numbers}", worse)
    return Verdict("ok", f"performance ok: {numbers}", worse)


def drift_verdict(psis, rows, threshold, min_rows, source):
    """Drift when any feature's PSI exceeds `threshold`, given enough rows to judge."""
    if rows < min_rows:
        return Verdict("insufficient", f"not enough evidence: {rows} row(s) in {source}, "
                                       f"min_eval_rows is {min_rows}")
    worst = drifted(psis, threshold)
    if worst:
        listed = ", ".join(f"{f} {v:.3g}" for f, v in worst.items())
        return Verdict("degraded", f"input drift in {source}: PSI {listed} (drift_threshold {threshold:g})")
    top = max(psis.values(), default=0.0)
    return Verdict("ok", f"no input drift in {source}: max PSI {top:.3g} (drift_threshold {threshold:g})")


def _relative(worse):
    return f"{worse:.1%} worse" if worse >= 0 else f"{-worse:.1%} better"
