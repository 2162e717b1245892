"""Model-quality statistics: the performance test (holdout baseline vs recent labelled rows) and
the per-feature drift test (reference counts vs recent inputs), and the verdicts built on them.
The verdicts and the binning of a sample are pure Python; numpy and scipy are imported only
inside the functions that compute a test, which run only when an eval or drift file changed."""
import bisect
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .decide import degradation

MISSING = "<missing>"     # the bin of absent values, numeric and categorical alike
OTHER = "<other>"         # categories beyond the reference's top ones, or never seen at training
BINS = 10                 # numeric features: deciles of the reference
MAX_CATEGORIES = 50       # keeps metadata.json small for high-cardinality columns
EPS = 1e-4                # floor for empty bins, so PSI stays finite
MIN_EXPECTED = 5          # Cochran's rule: bins expected to hold fewer sample rows are merged
BOOTSTRAP_DRAWS = 2000    # f1_macro's parametric bootstrap (fixed seed: same data, same answer)
BOOTSTRAP_SEED = 14


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def to_number(text: Any) -> float | None:
    """A CSV cell as a float, or None when it is empty or not a finite-or-NaN number."""
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


# --- drift: reference bins, sample counts, PSI, chi-square, Holm ----------------------------------

MISSING_SUFFIX = ":missing"  # the missing-value rate's own test, named after its feature
RANGE_SUFFIX = ":range"      # the share of values outside the training range, likewise
# The reference layout since 0.2: numeric bins open at both ends beyond the training range, and
# missing values apart from the bins (tested on their own). References without it (0.1) bin as
# they were made: a last bin of missing values, categories with a missing category.
LAYOUT = 2


def _categorical_bins(stats: Mapping[str, Any]) -> list[str]:
    categories = list(stats["categories"])
    return categories if OTHER in categories else categories + [OTHER]


def reference_counts(stats: Mapping[str, Any], rows: int | None = None) -> list[int]:
    """The reference's count per bin, aligned with `sample_counts`. A model trained before counts
    were stored has shares only: its counts are rebuilt as share x `rows` (the rows it was
    trained on, which is what the shares were computed from)."""
    if "counts" in stats:
        counts = list(stats["counts"])
    elif rows:
        counts = [round(p * rows) for p in stats["proportions"]]
    else:
        raise ValueError("reference has neither counts nor a row count to rebuild them from")
    if stats["kind"] == "categorical":
        counts += [0] * (len(_categorical_bins(stats)) - len(counts))
    return counts


def sample_counts(stats: Mapping[str, Any], values: Iterable[Any]) -> list[int]:
    """How many of `values` fall in each bin of the reference `stats`. Since layout 2, numeric
    bins are (-inf, min), [min, e1), ..., [ek, max], (max, inf) of the training values, the first
    and last empty at training, so that values outside the training range are their own bins
    (a constant column that changes, a year beyond the training years); categorical bins are the
    reference's categories plus OTHER; missing values are left out (missing_counts counts them).
    Before layout 2: numeric [-inf, e1), ..., [ek, inf) plus a last bin of missing values, and
    missing values as a category."""
    if stats.get("layout") == LAYOUT:
        return _layout2_counts(stats, values)
    if stats["kind"] == "numeric":
        edges = stats["edges"]
        counts = [0] * (len(edges) + 2)
        for v in values:
            counts[-1 if is_missing(v) else bisect.bisect_right(edges, float(v))] += 1
        return counts
    bins = _categorical_bins(stats)
    index = {c: i for i, c in enumerate(bins)}
    other = index[OTHER]
    counts = [0] * len(bins)
    for v in values:
        counts[index.get(MISSING if is_missing(v) else str(v), other)] += 1
    return counts


def _layout2_counts(stats: Mapping[str, Any], values: Iterable[Any]) -> list[int]:
    if stats["kind"] == "numeric":
        edges, lo, hi = stats["edges"], stats["min"], stats["max"]
        counts = [0] * (len(edges) + 3)
        if lo is None:  # no value at training: everything present is out of range
            for v in values:
                if not is_missing(v):
                    counts[-1] += 1
            return counts
        for v in values:
            if is_missing(v):
                continue
            x = float(v)
            if x < lo:
                counts[0] += 1
            elif x > hi:
                counts[-1] += 1
            else:
                counts[1 + bisect.bisect_right(edges, x)] += 1
        return counts
    bins = _categorical_bins(stats)
    index = {c: i for i, c in enumerate(bins)}
    other = index[OTHER]
    counts = [0] * len(bins)
    for v in values:
        if not is_missing(v):
            counts[index.get(str(v), other)] += 1
    return counts


def feature_of(test: str) -> str:
    """The feature a test is about: `x` for `x`, `x:missing` and `x:range`."""
    for suffix in (MISSING_SUFFIX, RANGE_SUFFIX):
        if test.endswith(suffix):
            return test[:-len(suffix)]
    return test


def missing_counts(stats: Mapping[str, Any], values: Sequence[Any]) -> tuple[list[int], list[int]] | None:
    """([present, missing] of the reference, [present, missing] of `values`) for the missing-value
    rate's own test; None for a reference before layout 2 (its missing values are a bin) or when
    neither side has a missing value."""
    if stats.get("layout") != LAYOUT:
        return None
    got_missing = sum(1 for v in values if is_missing(v))
    return missing_rates(stats, len(values) - got_missing, got_missing)


def missing_rates(stats: Mapping[str, Any], present: int, missing: int) -> tuple[list[int], list[int]] | None:
    """missing_counts of a sample of `present` values and `missing` missing ones."""
    if stats.get("layout") != LAYOUT:
        return None
    ref_missing, ref_n = int(stats.get("missing", 0)), int(stats["n"])
    if not ref_missing and not missing:
        return None
    return [ref_n - ref_missing, ref_missing], [present, missing]


def shares(counts: Sequence[float]) -> list[float]:
    total = sum(counts) or 1
    return [n / total for n in counts]


def psi(expected_props: Sequence[float], actual_props: Sequence[float], eps: float = EPS) -> float:
    """Population stability index: sum over bins of (actual - expected) * ln(actual / expected),
    with empty bins floored at `eps`. 0 = same distribution; > 0.2 is commonly read as a shift."""
    if len(expected_props) != len(actual_props):
        raise ValueError(f"bin counts differ: {len(expected_props)} vs {len(actual_props)}")
    total = 0.0
    for e, a in zip(expected_props, actual_props):
        e, a = max(e, eps), max(a, eps)
        total += (a - e) * math.log(a / e)
    return total


def merge_sparse(ref: Sequence[int], sample: Sequence[int], ordered: bool,
                 min_expected: float = MIN_EXPECTED) -> tuple[list[int], list[int]]:
    """Merge bins until each is expected to hold at least `min_expected` rows of the smaller
    sample (Cochran's rule for the chi-square approximation): adjacent bins of an ordered
    (numeric) feature, and the sparse ones pooled into one for a categorical feature. Bins empty
    on both sides are dropped. Returns the merged (reference, sample) counts."""
    pairs = [(r, s) for r, s in zip(ref, sample) if r or s]
    total = sum(r + s for r, s in pairs)
    smaller = min(sum(ref), sum(sample))
    if not total:
        return [], []

    def enough(r: int, s: int) -> bool:
        return (r + s) / total * smaller >= min_expected

    merged: list[tuple[int, int]] = []
    if ordered:
        for r, s in pairs:
            if merged and not enough(*merged[-1]):
                merged[-1] = (merged[-1][0] + r, merged[-1][1] + s)
            else:
                merged.append((r, s))
        if len(merged) > 1 and not enough(*merged[-1]):
            last = merged.pop()
            merged[-1] = (merged[-1][0] + last[0], merged[-1][1] + last[1])
    else:
        sparse = (0, 0)
        for r, s in pairs:
            if enough(r, s):
                merged.append((r, s))
            else:
                sparse = (sparse[0] + r, sparse[1] + s)
        if sparse != (0, 0):
            if enough(*sparse) or not merged:
                merged.append(sparse)
            else:  # still too small: joins the smallest proper bin
                i = min(range(len(merged)), key=lambda k: sum(merged[k]))
                merged[i] = (merged[i][0] + sparse[0], merged[i][1] + sparse[1])
    return [r for r, _ in merged], [s for _, s in merged]


def chi_square_homogeneity(ref: Sequence[int], sample: Sequence[int]) -> tuple[float, int, float]:
    """Pearson's chi-square test that two samples come from one distribution over the same bins
    (a 2 x k contingency table, both sample sizes in the null). Returns (statistic, dof, p)."""
    from scipy.special import chdtrc  # chi2.sf without the distribution object's overhead (0.4 ms a call)

    n_ref, n_sample = sum(ref), sum(sample)
    total = n_ref + n_sample
    stat = 0.0
    for r, s in zip(ref, sample):
        col = r + s
        for observed, row in ((r, n_ref), (s, n_sample)):
            exp = row * col / total
            stat += (observed - exp) ** 2 / exp
    dof = len(ref) - 1
    return stat, dof, (float(chdtrc(dof, stat)) if dof > 0 else 1.0)


def feature_tests(reference: Mapping[str, Any], columns: Mapping[str, Sequence[Any]],
                  rows: int | None = None) -> dict[str, dict[str, float]]:
    """{test: {"psi", "p"}} of a sample {feature: values} against the reference. Per feature: the
    distribution of its values (chi-square homogeneity on the reference bins, sparse ones merged;
    since layout 2 the values inside the training range); `<feature>:range`, the share of values
    outside the training range, where there are any (Fisher's exact test: with nothing outside the
    range at training, its p-value is the chance that all of them fall in the sample when reference
    and sample are alike); `<feature>:missing`, the missing-value rate, where either side has a
    missing value (Fisher's exact test, two-sided). PSI is each test's effect size."""
    out = {}
    for name, stats in reference.items():
        if name in columns:
            values = columns[name]
            out.update(count_tests(name, stats, reference_counts(stats, rows), sample_counts(stats, values),
                                   missing_counts(stats, values)))
    return out


def count_tests(name: str, stats: Mapping[str, Any], ref: Sequence[int], got: Sequence[int],
                rates: tuple[list[int], list[int]] | None) -> dict[str, dict[str, float]]:
    """The tests of feature_tests of one feature, from its counts: `ref` and `got` per bin
    (reference_counts, sample_counts) and the missing-value `rates` (missing_counts)."""
    out = {}
    if stats.get("layout") != LAYOUT:
        out[name] = _chi_square(ref, got, ordered=stats["kind"] == "numeric")
    else:
        inner_ref, inner_got = inner_bins(stats, ref, got)
        if sum(inner_got):
            out[name] = _chi_square(inner_ref, inner_got, ordered=stats["kind"] == "numeric")
    return dict(out, **side_tests(name, stats, ref, got, rates))


def inner_bins(stats: Mapping[str, Any], ref: Sequence[int], got: Sequence[int]) -> tuple[Sequence[int], Sequence[int]]:
    """The bins of a layout-2 feature's chi-square test: a numeric one's inside the training range."""
    return (ref[1:-1], got[1:-1]) if stats["kind"] == "numeric" else (ref, got)


def side_tests(name: str, stats: Mapping[str, Any], ref: Sequence[int], got: Sequence[int],
               rates: tuple[list[int], list[int]] | None) -> dict[str, dict[str, float]]:
    """count_tests' exact tests of one feature: `<name>:range` and `<name>:missing`."""
    out = {}
    outside = got[0] + got[-1] if stats.get("layout") == LAYOUT and stats["kind"] == "numeric" else 0
    if outside:
        inside = sum(got) - outside
        out[name + RANGE_SUFFIX] = _exact([sum(ref) - ref[0] - ref[-1], ref[0] + ref[-1]],
                                          [inside, outside], "greater")
    if rates is not None:
        out[name + MISSING_SUFFIX] = _exact(*rates, "two-sided")
    return out


def _chi_square(ref: Sequence[int], got: Sequence[int], ordered: bool) -> dict[str, float]:
    merged_ref, merged_got = merge_sparse(ref, got, ordered=ordered)
    _, _, p = chi_square_homogeneity(merged_ref, merged_got)
    return {"psi": round(psi(shares(ref), shares(got)), 6), "p": p}


def _exact(ref: Sequence[int], got: Sequence[int], alternative: str) -> dict[str, float]:
    """Fisher's exact test on the 2 x 2 table [ref, got] of [usual, unusual] counts: `greater`
    asks whether the sample holds a larger share of the second kind."""
    p = _fisher(int(ref[0]), int(ref[1]), int(got[0]), int(got[1]), alternative)
    return {"psi": round(psi(shares(ref), shares(got)), 6), "p": p}


@functools.lru_cache(maxsize=4096)
def _fisher(a: int, b: int, c: int, d: int, alternative: str) -> float:
    """Fisher's p of [[a, b], [c, d]] (several ms a call): the segments of an entry share a
    reference's counts and often a sample's, so one table is tested once per process."""
    from scipy.stats import fisher_exact

    return float(fisher_exact([[a, b], [c, d]], alternative=alternative)[1])  # odds ratio > 1: more of the second kind


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values {name: p}: a feature is significant at level alpha when
    its adjusted p is at most alpha, with the chance of any false flag at most alpha."""
    order = sorted(pvalues, key=lambda k: pvalues[k])
    m = len(order)
    adjusted, running = {}, 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[name]))
        adjusted[name] = running
    return adjusted


def benjamini_hochberg(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Benjamini-Hochberg adjusted p-values {name: q}: the names with q <= alpha are those BH
    rejects at level alpha (the largest k with p_(k) <= alpha k / m, and every smaller p), which
    bounds the expected share of false flags among the flagged by alpha, and under the global
    null the chance of any flag. A NaN p-value (a segment not judged) is no member of the family:
    it leaves m unchanged and its q is NaN. Ties get the same q."""
    judged = sorted((p, name) for name, p in pvalues.items() if not math.isnan(p))
    m = len(judged)
    adjusted = {name: math.nan for name in pvalues}
    running = 1.0
    for rank in range(m, 0, -1):  # step-up: q_(k) = min over j >= k of p_(j) m / j
        p, name = judged[rank - 1]
        running = min(running, p * m / rank)
        adjusted[name] = running
    return adjusted


BH = "Benjamini-Hochberg"


@dataclass(frozen=True)
class Correction:
    """One segment's test corrected across the judged segments of its entry (the family, per
    test type): its own p-value, the BH-adjusted one, and the level that stands for its test
    within the segment (alpha x R / m, R the segments BH flags: 0 when it flags none)."""

    p_value: float
    p_adjusted: float
    family: int          # m: the segments of the entry judged by this test
    significant: int     # R: those whose adjusted p is at most alpha
    alpha: float

    @property
    def level(self) -> float:
        return self.alpha * self.significant / self.family if self.family else 0.0

    def evidence(self) -> dict[str, Any]:
        return {"procedure": BH, "p_value": float(f"{self.p_value:.4g}"),
                "p_adjusted": float(f"{self.p_adjusted:.4g}"), "family": self.family,
                "significant": self.significant, "alpha": self.alpha}

    def text(self) -> str:
        return (f"{BH} over {self.family} segment(s): p {self.p_value:.2g}, adjusted {self.p_adjusted:.2g}, "
                f"{self.significant} segment(s) significant")


def correct(pvalues: Mapping[str, float], alpha: float) -> dict[str, Correction]:
    """The Correction of each judged member of a family {segment: p} (NaN: not judged, left out)."""
    adjusted = benjamini_hochberg(pvalues)
    judged = {name: p for name, p in pvalues.items() if not math.isnan(p)}
    significant = sum(1 for name in judged if adjusted[name] <= alpha)
    return {name: Correction(p, adjusted[name], len(judged), significant, alpha) for name, p in judged.items()}


def drift_p_value(tests: Mapping[str, Mapping[str, float]], policy: "DriftPolicy") -> float:
    """A segment's one p-value of "no tested feature drifted", for the correction across
    segments: the smallest Holm-adjusted p of its tests (Bonferroni's combination, valid under any
    dependence between them); NaN when nothing is tested."""
    tested = policy.tested(list(tests))
    return min(holm({f: tests[f]["p"] for f in tested}).values(), default=math.nan)


@dataclass(frozen=True)
class DriftPolicy:
    """What the drift verdict needs from the config."""

    threshold: float
    alpha: float
    share: float = 0.0
    features: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    thresholds: Mapping[str, float] | None = None    # per-feature PSI thresholds overriding `threshold`

    def tested(self, available: Sequence[str]) -> list[str]:
        """The tests of `available` (features and their `:missing` tests) the policy wants."""
        chosen = [f for f in available if self.features is None or feature_of(f) in self.features]
        return [f for f in chosen if feature_of(f) not in self.exclude]

    def threshold_of(self, test: str) -> float:
        return (self.thresholds or {}).get(feature_of(test), self.threshold)

    def needed(self, tested: int) -> int:
        """Drifted features that make the model count as drifted: drift_share of those tested,
        and at least one."""
        return max(1, math.ceil(self.share * tested - 1e-9))


class Judged(StrEnum):
    """What a quality test concluded."""

    DEGRADED = "degraded"          # worse beyond chance and beyond the threshold (or drifted)
    OK = "ok"
    INSUFFICIENT = "insufficient"  # too few rows to say
    ERROR = "error"                # the data or the model could not be used


@dataclass(frozen=True)
class Verdict:
    """What recent data says about the current model: `degraded`, `ok` or `insufficient`
    (not enough evidence), with the numbers behind it."""

    state: Judged
    text: str
    degradation: float | None = None
    evidence: dict[str, Any] | None = None
    note: str | None = None        # an `ok` that could not have been anything else: say so in status


def drift_verdict(tests: Mapping[str, Mapping[str, float]], rows: int, policy: DriftPolicy, min_rows: int,
                  source: str, correction: Correction | None = None) -> "Verdict":
    """Drift when at least `policy.needed` features are both significant (chi-square, Holm at
    `alpha`) and have a PSI of at least their threshold. A segment's tests are corrected across
    its entry's segments too (`correction`, from the drift_p_value of each): Holm within the
    segment then runs at the level BH leaves it, alpha x R / m (Benjamini and Bogomolov's
    selective inference on families of hypotheses), 0 when BH flags no segment."""
    if rows < min_rows:
        return Verdict(Judged.INSUFFICIENT, f"not enough evidence: {rows} row(s) in {source}, "
                                       f"min_eval_rows is {min_rows}")
    tested = policy.tested(list(tests))
    adjusted = holm({f: tests[f]["p"] for f in tested})
    level = policy.alpha if correction is None else correction.level
    drifted = {f: tests[f]["psi"] for f in tested
               if adjusted[f] <= level and tests[f]["psi"] >= policy.threshold_of(f)}
    drifted = dict(sorted(drifted.items(), key=lambda kv: -kv[1]))
    # drift_share counts features: a feature drifts when any of its tests (values, range, missing) does
    features = {feature_of(t) for t in tested}
    drifted_count = len({feature_of(t) for t in drifted})
    evidence: dict[str, Any] = {"tested": len(features), "needed": policy.needed(len(features)), "alpha": policy.alpha,
                "p_adjusted": {f: float(f"{adjusted[f]:.4g}") for f in tested}, "drifted_features": drifted}
    tests_text = f"{len(tested)} test(s) of {len(features)} feature(s)" if len(tested) != len(features) \
        else f"{len(features)} feature(s)"
    rule = f"drift_threshold {policy.threshold:g}, quality_alpha {policy.alpha:g}, Holm over {tests_text}"
    if correction is not None:
        evidence["correction"] = correction.evidence()
        rule += f"; {correction.text()}"
    if drifted and drifted_count >= evidence["needed"]:
        listed = ", ".join(f"{f} {v:.3g} (p {adjusted[f]:.2g})" for f, v in drifted.items())
        return Verdict(Judged.DEGRADED, f"input drift in {source}: PSI {listed} ({rule})", evidence=evidence)
    top = max((tests[f]["psi"] for f in tested), default=0.0)
    text = f"no input drift in {source}: max PSI {top:.3g}, min adjusted p {min(adjusted.values(), default=1):.2g} ({rule})"
    if drifted:
        text += f"; {drifted_count} drifted feature(s), drift_share needs {evidence['needed']}"
    return Verdict(Judged.OK, text, evidence=evidence)


# --- performance: per-metric sample statistics and the test ---------------------------------------

def metric_sample(metric: str, y_true: Any, y_pred: Any) -> dict[str, Any]:
    """What the performance test needs of one scored sample (a holdout at training, recent rows at
    check), small enough for metadata.json:
    accuracy: n and correct predictions (exact test); f1_macro: the confusion matrix (bootstrap);
    r2, rmse, mae: n, mean and standard deviation of per-row pseudo-values whose mean is the
    metric (the loss itself for mae, delta-method linearisations for rmse and r2), for Welch's test."""
    import numpy as np

    n = len(y_true)
    if metric == "accuracy":
        return {"method": "exact", "n": n, "correct": int((np.asarray(y_true, dtype=str) ==
                                                          np.asarray(y_pred, dtype=str)).sum())}
    if metric == "f1_macro":
        truth, pred = np.asarray(y_true, dtype=str), np.asarray(y_pred, dtype=str)
        labels = sorted(set(truth) | set(pred))
        index = {c: i for i, c in enumerate(labels)}
        confusion: Any = np.zeros((len(labels), len(labels)), dtype=int)
        np.add.at(confusion, ([index[c] for c in truth], [index[c] for c in pred]), 1)
        return {"method": "bootstrap", "n": n, "labels": labels, "confusion": confusion.tolist()}
    y, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    err2 = (y - p) ** 2
    if metric == "mae":
        values = np.abs(y - p)
    elif metric == "rmse":
        mse = err2.mean()
        rmse = math.sqrt(mse)
        values = rmse + (err2 - mse) / (2 * rmse) if rmse > 0 else np.zeros(n)
    elif metric == "r2":
        sse, sst = err2.mean(), ((y - y.mean()) ** 2).mean()
        if sst == 0:
            values = np.full(n, 1.0 - sse if sse == 0 else 0.0)
        else:
            values = 1 - err2 / sst + sse * ((y - y.mean()) ** 2 - sst) / sst ** 2
    else:
        raise ValueError(metric)
    return {"method": "welch", "n": n, "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if n > 1 else 0.0}


PERIODS = 6              # consecutive chunks of the holdout the period-to-period spread is measured on
PERIOD_MIN_ROWS = 30     # rows a chunk needs to count


def period_spread(metric: str, y_true: Any, y_pred: Any, order: Any, periods: int = PERIODS) -> dict[str, Any] | None:
    """How much a score varies from period to period beyond its sampling error, as NannyML
    derives thresholds from per-chunk scores of a reference period: the rows in time order cut into
    up to `periods` consecutive chunks, the variance of their scores less the mean of their
    sampling variances (never below 0). {"period_sd", "periods", "loss"}: `loss` is the mean
    loss over the chunks (1 - score for accuracy and r2, the score for mae and rmse), so that a
    spread measured in-sample can be scaled to out-of-sample losses. None where there are too few
    rows for two chunks, or for f1_macro (its sampling variance has no closed form here)."""
    import numpy as np

    n = len(y_true)
    count = min(periods, n // PERIOD_MIN_ROWS)
    if count < 2 or metric == "f1_macro":
        return None
    by_time = np.argsort(np.asarray(order, dtype=float), kind="stable")
    truth, pred = np.asarray(y_true)[by_time], np.asarray(y_pred)[by_time]
    scores, variances = [], []
    for part in np.array_split(np.arange(n), count):
        sample = metric_sample(metric, truth[part], pred[part])
        if sample["method"] == "exact":
            share = sample["correct"] / sample["n"]
            scores.append(share)
            variances.append(share * (1 - share) / sample["n"])
        else:
            scores.append(sample["mean"])
            variances.append(sample["sd"] ** 2 / sample["n"])
    between = float(np.var(scores, ddof=1)) - float(np.mean(variances))
    mean = float(np.mean(scores))
    return {"period_sd": math.sqrt(between) if between > 0 else 0.0, "periods": count,
            "loss": mean if metric in ("mae", "rmse") else 1.0 - mean}


def combined_spread(holdout: dict[str, Any] | None, training: dict[str, Any] | None,
                    holdout_loss: float) -> dict[str, Any] | None:
    """The period spread the performance test allows for: the larger of the one measured on the
    holdout's chunks (out of sample, but only as long as the holdout) and the one measured on the
    training rows' chunks (in sample, over the whole span of the data, seasons included), the
    latter scaled from in-sample to out-of-sample losses."""
    candidates = []
    if holdout:
        candidates.append((holdout["period_sd"], holdout["periods"]))
    if training and training["loss"] > 0 and holdout_loss > 0:
        candidates.append((training["period_sd"] * holdout_loss / training["loss"], training["periods"]))
    if not candidates:
        return None
    sd, periods = max(candidates)
    return {"period_sd": sd, "periods": periods}


def _macro_f1(confusion: Any) -> Any:
    """Macro F1 of confusion matrices (..., k, k), as scikit-learn computes it (0 where undefined)."""
    import numpy as np

    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    denom = confusion.sum(axis=-1) + confusion.sum(axis=-2)
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return f1.mean(axis=-1)


def _aligned_confusion(sample: Mapping[str, Any], labels: list[str]) -> Any:
    import numpy as np

    index = {c: i for i, c in enumerate(labels)}
    out = np.zeros((len(labels), len(labels)))
    pos = [index[c] for c in sample["labels"]]
    out[np.ix_(pos, pos)] = sample["confusion"]
    return out


def performance_test(metric: str, baseline: Any, sample: Mapping[str, Any], higher_is_better: bool,
                     alpha: float) -> dict[str, Any]:
    """Is `sample`'s score worse than `baseline`'s beyond chance? Both are metric_sample dicts; a
    baseline given as a bare score (a model trained before these statistics) is taken as exact.
    Returns {score, ci (two-sided 1 - 2 alpha, so its bound on the bad side is the one-sided
    alpha bound), baseline, baseline_n, n, p_value (one-sided: current no worse than baseline),
    detectable (the smallest relative degradation significant at alpha with these n), method}."""
    import numpy as np
    from scipy import special, stats

    n = sample["n"]
    # How much the score moves from period to period beyond sampling error (period_spread): the
    # new rows are one more period, so a difference of that size is not a degradation.
    tau = float(baseline.get("period_sd") or 0.0) if isinstance(baseline, dict) else 0.0
    if sample["method"] == "exact":
        k1 = sample["correct"]
        p1 = k1 / n
        lo, hi = stats.binomtest(k1, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact")
        if isinstance(baseline, dict):
            n0, k0 = baseline["n"], baseline["correct"]
        else:  # a bare score: its holdout size comes with it
            n0, k0 = baseline[1], round(baseline[0] * baseline[1])
        p0 = k0 / n0
        if tau > 0:  # the exact test knows no extra variance: a normal test with it added
            se = math.sqrt(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n + tau ** 2)
            crit = float(stats.norm.ppf(1 - alpha)) * se
            return {"score": p1, "ci": [float(lo), float(hi)], "baseline": p0, "baseline_n": n0, "n": n,
                    "p_value": float(stats.norm.sf((p0 - p1) / se)) if se > 0 else float(p1 >= p0),
                    "detectable": crit / p0 if p0 else None, "period_sd": tau,
                    "method": "normal test with the holdout's period-to-period spread, Clopper-Pearson"}

        def pvalue(k: int) -> float:
            return float(stats.fisher_exact([[k0, n0 - k0], [k, n - k]], alternative="greater")[1])

        # the most correct rows that would still be significantly worse: Fisher's p grows with k
        if pvalue(0) > alpha:
            detectable = None
        else:
            lo_k, hi_k = 0, n
            while lo_k < hi_k:
                mid = (lo_k + hi_k + 1) // 2
                lo_k, hi_k = (mid, hi_k) if pvalue(mid) <= alpha else (lo_k, mid - 1)
            detectable = degradation(p0, lo_k / n, True) if p0 else None
        return {"score": p1, "ci": [float(lo), float(hi)], "baseline": p0, "baseline_n": n0, "n": n,
                "p_value": pvalue(k1), "detectable": detectable, "method": "Fisher exact, Clopper-Pearson"}
    sign = 1.0 if higher_is_better else -1.0
    if sample["method"] == "bootstrap":
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        exact = not isinstance(baseline, dict)
        labels = sorted(set(sample["labels"]) | (set() if exact else set(baseline["labels"])))
        c1 = _aligned_confusion(sample, labels)
        draws1 = rng.multinomial(n, (c1 / n).ravel(), size=BOOTSTRAP_DRAWS).reshape(-1, len(labels), len(labels))
        f1 = _macro_f1(draws1)
        score = float(_macro_f1(c1))
        if exact:
            base, n0, base_draws = float(baseline[0]), baseline[1], np.full(BOOTSTRAP_DRAWS, float(baseline[0]))
        else:
            c0 = _aligned_confusion(baseline, labels)
            n0 = baseline["n"]
            base = float(_macro_f1(c0))
            base_draws = _macro_f1(rng.multinomial(n0, (c0 / n0).ravel(), size=BOOTSTRAP_DRAWS)
                                   .reshape(-1, len(labels), len(labels)))
        worse = sign * (base_draws - f1)
        if tau > 0:
            worse = worse + rng.normal(0.0, tau, BOOTSTRAP_DRAWS)
        p_value = float((1 + np.sum(worse <= 0)) / (BOOTSTRAP_DRAWS + 1))
        lo, hi = np.quantile(f1, [alpha, 1 - alpha])
        spread = float(np.std(worse, ddof=1)) * float(stats.norm.ppf(1 - alpha))
        return {"score": score, "ci": [float(lo), float(hi)], "baseline": base, "baseline_n": n0, "n": n,
                "p_value": p_value, "detectable": spread / abs(base) if base else None,
                "method": f"parametric bootstrap ({BOOTSTRAP_DRAWS} draws)"}
    m1, se1 = sample["mean"], sample["sd"] / math.sqrt(n)
    if isinstance(baseline, dict):
        m0, n0, se0 = baseline["mean"], baseline["n"], baseline["sd"] / math.sqrt(baseline["n"])
    else:
        m0, n0, se0 = float(baseline[0]), baseline[1], 0.0
    se = math.sqrt(se0 ** 2 + se1 ** 2 + tau ** 2)
    # Welch-Satterthwaite degrees of freedom (n - 1 of the sample when the baseline is exact); the
    # period spread is estimated from a handful of chunks: its own degrees of freedom count too
    periods = int(baseline.get("periods") or 0) if isinstance(baseline, dict) else 0
    parts = [v for v in ((se1 ** 2, n - 1), (se0 ** 2, (n0 or 2) - 1), (tau ** 2, max(periods - 1, 1))) if v[0] > 0]
    df = (se ** 4 / sum(v ** 2 / d for v, d in parts)) if parts else float(n - 1)
    worse = sign * (m0 - m1)
    if se > 0:
        p_value = float(special.stdtr(df, -worse / se))  # t.sf, without the distribution object's overhead
    else:
        p_value = 0.0 if worse > 0 else 1.0
    half = float(special.stdtrit(max(n - 1, 1), 1 - alpha)) * se1  # t.ppf
    crit = float(special.stdtrit(df, 1 - alpha)) * se
    return {"score": m1, "ci": [m1 - half, m1 + half], "baseline": m0, "baseline_n": n0, "n": n,
            "p_value": p_value, "detectable": crit / abs(m0) if m0 else None,
            **({"period_sd": tau} if tau else {}),
            "method": "Welch t-test" + (" with the holdout's period-to-period spread" if tau else "")}


def performance_verdict(metric: str, evidence: Mapping[str, Any] | None, rows: int, higher_is_better: bool,
                        threshold: float, alpha: float, min_rows: int, source: str,
                        correction: Correction | None = None) -> "Verdict":
    """Degraded when the score on recent labelled rows is worse than the holdout baseline by more
    than `threshold` (relative, in the metric's direction) and the test says so at `alpha`.
    `evidence` is performance_test's result (None: not scored, too few rows). A segment's test is
    corrected across its entry's segments (`correction`): its BH-adjusted p must be at most `alpha`."""
    if rows < min_rows or evidence is None:
        return Verdict(Judged.INSUFFICIENT, f"not enough evidence: {rows} labelled row(s) in {source}, "
                                       f"min_eval_rows is {min_rows}")
    current, baseline = evidence["score"], evidence["baseline"]
    worse = degradation(baseline, current, higher_is_better)
    lo, hi = evidence["ci"]
    numbers = (f"{metric} {current:.4g} ({1 - 2 * alpha:.0%} CI {lo:.4g}..{hi:.4g}) on {rows} rows of {source} "
               f"vs baseline {baseline:.4g} on {evidence['baseline_n']} holdout rows ({_relative(worse)}, "
               f"p {evidence['p_value']:.2g}; performance_threshold {threshold:g}, quality_alpha {alpha:g}"
               + (f"; {correction.text()})" if correction is not None else ")"))
    p_value = evidence["p_value"] if correction is None else correction.p_adjusted
    evidence = dict(evidence, **({"correction": correction.evidence()} if correction is not None else {}))
    if worse > threshold and p_value <= alpha:
        return Verdict(Judged.DEGRADED, f"performance degraded: {numbers}", worse, evidence)
    detectable = evidence.get("detectable")
    note = None
    if detectable is None or detectable > threshold:
        note = (f"{rows} rows (vs {evidence['baseline_n']} holdout rows) are too few to detect a degradation of "
                f"{threshold:g} at quality_alpha {alpha:g}"
                + (f" (smallest detectable: {detectable:.1%})" if detectable is not None else ""))
    return Verdict(Judged.OK, f"performance ok: {numbers}" + (f"; {note}" if note else ""), worse, evidence, note)


def _relative(worse: float) -> str:
    return f"{worse:.1%} worse" if worse >= 0 else f"{-worse:.1%} better"
