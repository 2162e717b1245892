"""Performance and drift triggers: the pure PSI / verdict math, and the triggers end to end
(relabelled eval data, a lower-is-better metric, shifted inputs, no retrain loops, caching). The
command runs in-process (a subprocess would add its imports and, after each config edit, a
validation that imports scikit-learn) except where a fresh process is the point."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrainctl.core import quality
from retrainctl.core.fold import fold
from retrainctl.core.records import Record

# --- pure functions -----------------------------------------------------------------------------


def test_psi_of_identical_distributions_is_zero():
    assert quality.psi([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]) == 0.0


def test_psi_known_value():
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert quality.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected)
    assert quality.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.87889, abs=1e-5)


def test_psi_floors_empty_bins_and_rejects_misaligned_bins():
    value = quality.psi([1.0, 0.0], [0.5, 0.5])
    assert math.isfinite(value) and value > 1
    with pytest.raises(ValueError, match="bin counts differ: 2 vs 3"):
        quality.psi([0.5, 0.5], [0.2, 0.3, 0.5])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=2, max_size=12), st.data())
def test_psi_is_never_negative(a_counts, data):
    b_counts = data.draw(st.lists(st.integers(0, 50), min_size=len(a_counts), max_size=len(a_counts)))
    if not sum(a_counts) or not sum(b_counts):
        return
    a = [c / sum(a_counts) for c in a_counts]
    b = [c / sum(b_counts) for c in b_counts]
    assert quality.psi(a, b) >= -1e-12


def test_reference_counts_match_the_check_time_binning():
    import pandas as pd

    from retrainctl.fit.task import reference_stats

    X = pd.DataFrame({"x": [float(v) for v in range(100)] + [None] * 25,
                      "c": ["a"] * 60 + ["b"] * 40 + [None] * 25,
                      "k": [1.0] * 60 + [2.0] * 65})
    ref = reference_stats(X)
    assert ref["x"]["edges"] == pytest.approx(np.quantile(np.arange(100.0), np.arange(1, 10) / 10).tolist())
    # below the minimum, ten deciles up to the maximum, above the maximum; missing values apart
    assert ref["x"]["counts"] == [0] + [10] * 10 + [0] and (ref["x"]["missing"], ref["x"]["n"]) == (25, 125)
    assert (ref["x"]["min"], ref["x"]["max"]) == (0.0, 99.0)
    assert ref["c"] == {"kind": "categorical", "layout": 2, "categories": ["a", "b"], "counts": [60, 40],
                        "missing": 25, "n": 125}
    assert ref["k"]["edges"] == [2.0] and ref["k"]["counts"] == [0, 60, 65, 0]  # duplicate quantiles collapse
    for name, stats in ref.items():
        values = [None if pd.isna(v) else v for v in X[name]]
        assert quality.sample_counts(stats, values) == quality.reference_counts(stats), name
    assert quality.sample_counts(ref["c"], ["a", "zzz", None]) == [1, 0, 1]   # unseen -> <other>; missing apart
    assert quality.sample_counts(ref["x"], [-5.0, 0.0, 99.0, 150.0]) == [1, 1] + [0] * 8 + [1, 1]


def test_a_reference_of_0_1_is_binned_as_it_was_made():
    """A model trained by 0.1 keeps its binning: decile bins open at both ends, missing values in a
    last bin of their own, and a missing category."""
    old = {"kind": "numeric", "edges": [1.0, 2.0], "counts": [3, 3, 3, 1], "n": 10}
    assert quality.sample_counts(old, [0.5, 1.5, 2.5, 99.0, None]) == [1, 1, 2, 1]
    tests = quality.feature_tests({"x": old}, {"x": [0.5, 1.5, 2.5, None] * 10})
    assert list(tests) == ["x"]


def test_a_big_column_bins_on_sampled_edges_but_counts_every_row():
    """Over EDGE_SAMPLE values the edges come from a strided sample (near the deciles); the counts
    are still every row's, as the check-time binning counts them."""
    import pandas as pd

    from retrainctl.fit.task import EDGE_SAMPLE, reference_stats

    values = np.random.default_rng(3).lognormal(size=3 * EDGE_SAMPLE + 7)
    values[::97] = np.nan
    stats = reference_stats(pd.DataFrame({"x": values}))["x"]
    present = values[~np.isnan(values)]
    assert stats["edges"] == pytest.approx(np.quantile(present, np.arange(1, 10) / 10), rel=0.02)
    inner = np.bincount(np.searchsorted(stats["edges"], present, side="right")).tolist()
    assert stats["counts"] == [0, *inner, 0]  # nothing outside the training range, at training
    assert stats["missing"] == int(np.isnan(values).sum())
    assert sum(stats["counts"]) + stats["missing"] == stats["n"] == len(values)
    sample = [None if np.isnan(v) else v for v in values[:5000]]
    assert sum(quality.sample_counts(stats, sample)) == 5000 - sum(v is None for v in sample)


def test_a_reference_with_shares_only_rebuilds_its_counts_from_the_rows():
    legacy = {"kind": "numeric", "edges": [1.0], "proportions": [0.25, 0.75, 0.0]}
    assert quality.reference_counts(legacy, rows=400) == [100, 300, 0]
    legacy_cat = {"kind": "categorical", "categories": ["a", "b"], "proportions": [0.5, 0.5]}
    assert quality.reference_counts(legacy_cat, rows=10) == [5, 5, 0]


@pytest.mark.parametrize("ref, sample", [
    ([50, 30, 20], [10, 12, 8]),
    ([1000, 1000, 500, 10], [30, 25, 40, 5]),
    ([5, 5], [5, 5]),
    ([300, 200, 100, 100, 50], [10, 40, 10, 30, 10]),
])
def test_chi_square_homogeneity_matches_scipy(ref, sample):
    from scipy.stats import chi2_contingency

    stat, dof, p = quality.chi_square_homogeneity(ref, sample)
    expected = chi2_contingency([ref, sample], correction=False)
    assert (stat, dof, p) == (pytest.approx(expected.statistic), expected.dof, pytest.approx(expected.pvalue))


@pytest.mark.parametrize("ref, sample, ordered, merged", [
    # numeric: adjacent bins merge until each expects >= 5 rows of the smaller sample (30)
    ([100] * 10, [3] * 10, True, ([200] * 5, [6] * 5)),
    ([100] * 10 + [0], [3] * 10 + [0], True, ([200] * 5, [6] * 5)),       # empty on both sides: dropped
    ([100] * 9 + [100, 10], [3] * 10 + [2], True, ([200] * 4 + [210], [6] * 4 + [8])),  # a sparse tail joins its left
    # categorical: sparse categories pooled; a pool still too small joins the smallest bin
    ([900, 95, 5], [90, 9, 1], False, ([900, 100], [90, 10])),
    ([500, 480, 15, 5], [50, 48, 1, 1], False, ([500, 500], [50, 50])),
    ([10, 10], [1000, 1000], False, ([10, 10], [1000, 1000])),
])
def test_merge_sparse(ref, sample, ordered, merged):
    assert quality.merge_sparse(ref, sample, ordered) == merged


def test_holm_adjusted_p_values():
    assert quality.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005}) == pytest.approx(
        {"d": 0.02, "a": 0.03, "c": 0.06, "b": 0.06})
    assert quality.holm({"a": 0.6, "b": 0.9}) == {"a": 1.0, "b": 1.0}
    assert quality.holm({}) == {}


@pytest.mark.parametrize("metric", ["r2", "rmse", "mae", "accuracy", "f1_macro"])
def test_metric_sample_means_are_the_metric(metric):
    from retrainctl.fit.task import score

    rng = np.random.default_rng(1)
    if metric in ("accuracy", "f1_macro"):
        y = rng.choice(["a", "b", "c"], 200)
        p = np.where(rng.random(200) < 0.8, y, rng.choice(["a", "b", "c"], 200))
    else:
        y = rng.normal(10, 3, 200)
        p = y + rng.normal(0, 1, 200)
    sample = quality.metric_sample(metric, y, p)
    expected = score(metric, y, p)
    test = quality.performance_test(metric, sample, sample, metric not in ("rmse", "mae"), 0.01)
    assert test["score"] == pytest.approx(expected) and test["baseline"] == pytest.approx(expected)
    assert test["n"] == test["baseline_n"] == 200 and test["p_value"] > 0.4
    assert test["ci"][0] < expected < test["ci"][1]


def test_welch_test_matches_scipy():
    from scipy.stats import t, ttest_ind_from_stats

    base = {"method": "welch", "n": 400, "mean": 0.8, "sd": 0.5}
    now = {"method": "welch", "n": 50, "mean": 0.6, "sd": 0.9}
    test = quality.performance_test("r2", base, now, True, 0.01)
    expected = ttest_ind_from_stats(0.8, 0.5, 400, 0.6, 0.9, 50, equal_var=False, alternative="greater")
    assert test["p_value"] == pytest.approx(expected.pvalue)
    # lower is better (rmse): the same numbers mean an improvement
    assert quality.performance_test("rmse", base, now, False, 0.01)["p_value"] == pytest.approx(1 - expected.pvalue)
    # a baseline from before these statistics (score, holdout rows) is taken as exact: one-sample t
    legacy = quality.performance_test("r2", (0.8, 400), now, True, 0.01)
    assert legacy["p_value"] == pytest.approx(t.sf(0.2 / (0.9 / math.sqrt(50)), 49))


def test_exact_test_for_accuracy_matches_fisher_and_finds_what_is_detectable():
    from scipy.stats import binomtest, fisher_exact

    base = {"method": "exact", "n": 200, "correct": 180}
    now = {"method": "exact", "n": 40, "correct": 30}
    test = quality.performance_test("accuracy", base, now, True, 0.01)
    assert test["p_value"] == pytest.approx(fisher_exact([[180, 20], [30, 10]], alternative="greater")[1])
    ci = binomtest(30, 40).proportion_ci(confidence_level=0.98, method="exact")
    assert test["ci"] == pytest.approx([ci.low, ci.high])
    # detectable: the largest correct count still significant, as a relative degradation
    k = max(k for k in range(41) if fisher_exact([[180, 20], [k, 40 - k]], alternative="greater")[1] <= 0.01)
    assert test["detectable"] == pytest.approx((0.9 - k / 40) / 0.9)
    # 5 rows cannot show anything at 1%
    tiny = quality.performance_test("accuracy", base, {"method": "exact", "n": 1, "correct": 0}, True, 0.01)
    assert tiny["detectable"] is None


EVIDENCE = {"score": 0.8, "ci": [0.7, 0.9], "baseline": 0.9, "baseline_n": 300, "n": 100, "p_value": 0.001,
            "detectable": 0.04, "method": "Welch t-test"}


@pytest.mark.parametrize("changes, threshold, state", [
    ({}, 0.05, "degraded"),                                   # 11% worse and significant
    ({"p_value": 0.2}, 0.05, "ok"),                           # worse, but could be chance
    ({}, 0.2, "ok"),                                          # significant, but within the threshold
    ({"score": 0.95, "p_value": 0.99}, 0.05, "ok"),           # better
])
def test_performance_verdict_needs_size_and_significance(changes, threshold, state):
    v = quality.performance_verdict("accuracy", dict(EVIDENCE, **changes), 100, True, threshold, 0.01, 30, "eval.csv")
    assert v.state == state


def test_performance_verdict_text_and_a_sample_too_small_to_tell():
    v = quality.performance_verdict("accuracy", EVIDENCE, 100, True, 0.05, 0.01, 30, "eval.csv")
    assert v.text == ("performance degraded: accuracy 0.8 (98% CI 0.7..0.9) on 100 rows of eval.csv vs baseline 0.9 "
                      "on 300 holdout rows (11.1% worse, p 0.001; performance_threshold 0.05, quality_alpha 0.01)")
    assert v.degradation == pytest.approx(1 / 9) and v.evidence == EVIDENCE
    small = quality.performance_verdict("accuracy", dict(EVIDENCE, score=0.89, p_value=0.3, detectable=0.3), 100,
                                        True, 0.05, 0.01, 30, "eval.csv")
    assert small.state == "ok" and small.note == (
        "100 rows (vs 300 holdout rows) are too few to detect a degradation of 0.05 at quality_alpha 0.01 "
        "(smallest detectable: 30.0%)")
    assert small.text.endswith("; " + small.note) and v.note is None


def test_too_few_rows_is_not_evidence():
    v = quality.performance_verdict("accuracy", None, 12, True, 0.05, 0.01, 30, "eval.csv")
    assert (v.state, v.degradation) == ("insufficient", None)
    assert v.text == "not enough evidence: 12 labelled row(s) in eval.csv, min_eval_rows is 30"
    d = quality.drift_verdict({}, 5, quality.DriftPolicy(0.2, 0.01), 30, "recent.csv")
    assert d.text == "not enough evidence: 5 row(s) in recent.csv, min_eval_rows is 30"


TESTS = {"a": {"psi": 0.05, "p": 0.5}, "b": {"psi": 0.61, "p": 1e-6}, "c": {"psi": 0.25, "p": 0.002},
         "d": {"psi": 0.9, "p": 0.2}}


@pytest.mark.parametrize("policy, drifted", [
    (quality.DriftPolicy(0.2, 0.01), ["b", "c"]),           # c: 0.002 x 3 (Holm) <= 0.01; d: big PSI, not significant
    (quality.DriftPolicy(0.2, 0.001), ["b"]),
    (quality.DriftPolicy(0.3, 0.01), ["b"]),                # c's PSI below the threshold
    (quality.DriftPolicy(0.2, 0.01, thresholds={"b": 1.0}), ["c"]),
    (quality.DriftPolicy(0.2, 0.01, exclude=("b",)), ["c"]),
    (quality.DriftPolicy(0.2, 0.01, features=("a", "d")), []),
    (quality.DriftPolicy(0.2, 0.01, share=0.5), ["b", "c"]),   # 2 of 4 drifted: enough
    (quality.DriftPolicy(0.2, 0.01, share=0.75), []),          # needs 3
])
def test_drift_verdict_needs_significance_psi_and_share(policy, drifted):
    v = quality.drift_verdict(TESTS, 100, policy, 30, "recent.csv")
    assert v.state == ("degraded" if drifted else "ok")
    if drifted:
        assert list(v.evidence["drifted_features"]) == drifted


def test_drift_verdict_text():
    v = quality.drift_verdict(TESTS, 100, quality.DriftPolicy(0.2, 0.01), 30, "recent.csv")
    assert v.text == ("input drift in recent.csv: PSI b 0.61 (p 4e-06), c 0.25 (p 0.006) "
                      "(drift_threshold 0.2, quality_alpha 0.01, Holm over 4 feature(s))")
    assert v.evidence["p_adjusted"] == {"a": 0.5, "b": 4e-06, "c": 0.006, "d": 0.4}
    ok = quality.drift_verdict(TESTS, 100, quality.DriftPolicy(0.2, 0.01, share=1.0), 30, "recent.csv")
    assert ok.text == ("no input drift in recent.csv: max PSI 0.9, min adjusted p 4e-06 (drift_threshold 0.2, "
                       "quality_alpha 0.01, Holm over 4 feature(s)); 2 drifted feature(s), drift_share needs 4")


# --- the correction across an entry's segments (Benjamini-Hochberg) ---------------------------------


def test_benjamini_hochberg_against_a_hand_computed_example():
    # sorted p x m / rank: 0.005, 0.05, 0.035, 0.05, 0.3; step-up from the largest: the second
    # rank takes the third's 0.035, the fourth keeps 0.05
    p = {"s1": 0.02, "s2": 0.3, "s3": 0.001, "s4": 0.04, "s5": 0.021}
    assert quality.benjamini_hochberg(p) == pytest.approx(
        {"s3": 0.005, "s1": 0.035, "s5": 0.035, "s4": 0.05, "s2": 0.3})
    fixed = quality.correct(p, 0.04)  # p_(3) = 0.021 <= 0.04 x 3/5, p_(4) = 0.04 > 0.04 x 4/5: R = 3
    assert {name for name, c in fixed.items() if c.p_adjusted <= 0.04} == {"s1", "s3", "s5"}
    assert fixed["s1"] == quality.Correction(0.02, pytest.approx(0.035), 5, 3, 0.04)
    assert fixed["s1"].level == pytest.approx(0.04 * 3 / 5)
    assert fixed["s4"].evidence() == {"procedure": "Benjamini-Hochberg", "p_value": 0.04, "p_adjusted": 0.05,
                                      "family": 5, "significant": 3, "alpha": 0.04}


def test_benjamini_hochberg_ties_nan_and_small_families():
    assert quality.benjamini_hochberg({"a": 0.01, "b": 0.01, "c": 0.5}) == pytest.approx(
        {"a": 0.015, "b": 0.015, "c": 0.5})
    # a segment not judged (NaN) is no member: m is 2, and its own q stays NaN
    q = quality.benjamini_hochberg({"a": 0.01, "b": math.nan, "c": 0.02})
    assert q["a"] == q["c"] == pytest.approx(0.02) and math.isnan(q["b"])
    assert set(quality.correct({"a": 0.01, "b": math.nan, "c": 0.02}, 0.01)) == {"a", "c"}
    # one judged segment: nothing to correct for, its test is the per-model one
    one = quality.correct({"a": 0.004, "b": math.nan}, 0.01)
    assert one == {"a": quality.Correction(0.004, 0.004, 1, 1, 0.01)} and one["a"].level == 0.01
    assert quality.correct({}, 0.01) == {} and quality.correct({"a": math.nan}, 0.01) == {}
    assert quality.benjamini_hochberg({"a": 0.9, "b": 0.8}) == {"a": 0.9, "b": 0.9}


def test_a_segments_performance_verdict_needs_its_adjusted_p_and_the_threshold():
    def verdict(correction, threshold=0.05):
        return quality.performance_verdict("accuracy", EVIDENCE, 100, True, threshold, 0.01, 30, "eval.csv [s1]",
                                           correction)

    alone = quality.Correction(0.001, 0.001, 1, 1, 0.01)
    assert verdict(alone).state == "degraded"
    assert verdict(None).text == verdict(alone).text.replace(
        "; Benjamini-Hochberg over 1 segment(s): p 0.001, adjusted 0.001, 1 segment(s) significant", "")
    crowd = quality.Correction(0.001, 0.9, 1000, 0, 0.01)  # p 0.001 is one of the ~10 expected in 1,000
    v = verdict(crowd)
    assert v.state == "ok" and v.text.startswith(
        "performance ok: accuracy 0.8 (98% CI 0.7..0.9) on 100 rows of eval.csv [s1] vs baseline 0.9 on 300 holdout "
        "rows (11.1% worse, p 0.001; performance_threshold 0.05, quality_alpha 0.01; Benjamini-Hochberg over 1000 "
        "segment(s): p 0.001, adjusted 0.9, 0 segment(s) significant)")
    assert v.evidence == dict(EVIDENCE, correction=crowd.evidence()) and EVIDENCE.get("correction") is None
    assert verdict(alone, threshold=0.2).state == "ok"  # the effect size is still required


def test_a_segments_drift_runs_holm_at_the_level_bh_leaves_it():
    policy = quality.DriftPolicy(0.2, 0.01)
    assert quality.drift_p_value(TESTS, policy) == pytest.approx(4e-6)  # b: 1e-6 x 4 (Holm)
    assert quality.drift_p_value(TESTS, quality.DriftPolicy(0.2, 0.01, features=("a", "d"))) == pytest.approx(0.4)
    assert math.isnan(quality.drift_p_value({}, policy))
    # 20 of 1,000 segments significant: level 0.01 x 20 / 1000 = 2e-4; b (4e-6) drifts, c (0.006) no longer
    v = quality.drift_verdict(TESTS, 100, policy, 30, "recent.csv [s1]", quality.Correction(4e-6, 1e-4, 1000, 20, 0.01))
    assert v.state == "degraded" and list(v.evidence["drifted_features"]) == ["b"]
    assert v.evidence["correction"]["family"] == 1000 and v.text.endswith(
        "Holm over 4 feature(s); Benjamini-Hochberg over 1000 segment(s): p 4e-06, adjusted 0.0001, "
        "20 segment(s) significant)")
    none = quality.drift_verdict(TESTS, 100, policy, 30, "recent.csv [s1]", quality.Correction(4e-6, 0.3, 1000, 0, 0.01))
    assert none.state == "ok" and not none.evidence["drifted_features"]
    alone = quality.drift_verdict(TESTS, 100, policy, 30, "recent.csv", quality.Correction(4e-6, 4e-6, 1, 1, 0.01))
    assert alone.evidence["drifted_features"] == quality.drift_verdict(TESTS, 100, policy, 30, "recent.csv").evidence[
        "drifted_features"] == {"b": 0.61, "c": 0.25}


def test_feature_tests_see_a_shift_and_not_a_resample():
    import pandas as pd

    from retrainctl.fit.task import reference_stats

    rng = np.random.default_rng(0)
    ref = reference_stats(pd.DataFrame({"x": rng.normal(0, 1, 2000), "c": ["a", "b"] * 1000}))
    same = quality.feature_tests(ref, {"x": rng.normal(0, 1, 500).tolist(), "c": ["a", "b"] * 250})
    shifted = quality.feature_tests(ref, {"x": rng.normal(1.5, 1, 500).tolist(), "c": ["b"] * 500})
    assert same["x"]["psi"] < 0.1 and same["x"]["p"] > 0.01 and same["c"] == {"psi": 0.0, "p": 1.0}
    assert shifted["x"]["psi"] > 1.0 and shifted["x"]["p"] < 1e-10 and shifted["c"]["p"] < 1e-10


@pytest.mark.parametrize("action, fired", [("alert", ["performance"]), ("retrain", ["performance", "drift"])])
def test_drift_retrains_only_with_drift_action_retrain(action, fired):
    from retrainctl.config.records import RetrainingConfig
    from retrainctl.core.decide import Observation, Reason, fire

    obs = Observation(now=0, data_hash="h", model_version=1, model_data_hash="h", model_trained_at=0,
                      performance=Reason("performance", "p"), drift=Reason("drift", "d"))
    assert [r.trigger_type for r in fire(RetrainingConfig(drift_action=action), obs)] == fired


def test_fold_remembers_quality_evidence_of_success_and_rejection_only():
    events = [
        {"model_name": "m", "status": "failure", "quality_keys": {"performance": "d|e1"}},
        {"model_name": "m", "status": "success", "quality_keys": {"performance": "d|e2"}},
        {"model_name": "m", "status": "rejected", "quality_keys": {"drift": "d|x"}},
    ]
    assert fold([Record.from_dict(e) for e in events])["m"].quality_handled == {"performance": "d|e2", "drift": "d|x"}


# --- helpers for the end-to-end tests -----------------------------------------------------------

RELABEL = {"Iris-setosa": "Iris-versicolor", "Iris-versicolor": "Iris-virginica", "Iris-virginica": "Iris-setosa"}


def iris_rows(project):
    lines = project.data("iris").read_text().splitlines()
    return lines[0], lines[1:]


def write_eval(project, rows, relabel=False, name="eval.csv"):
    header, _ = iris_rows(project)
    if relabel:
        rows = [",".join(r.split(",")[:-1] + [RELABEL[r.split(",")[-1]]]) for r in rows]
    path = project.root / "data" / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def status_of(project, name):
    out = project.cli("status", "--json")
    assert out.exit_code == 0, out.stderr
    return next(m for m in json.loads(out.stdout)["models"] if m["model_name"] == name)


def iris_history(project):
    return [(e["trigger_type"], e["status"]) for e in project.history("iris")]


# --- performance trigger ------------------------------------------------------------------------


def test_relabelled_eval_data_triggers_performance_and_correct_data_does_not(trained):
    project = trained  # after its first check: iris v1 and housing v1, each with its initial success
    _, rows = iris_rows(project)
    write_eval(project, rows)
    project.set_model("iris", eval_path="data/eval.csv")

    first = project.cli("check", "--json")
    assert first.exit_code == 0, first.stderr
    assert [(m["model_name"], m["due"]) for m in json.loads(first.stdout)["models"]] == [
        ("iris", False), ("housing", False)]
    st_ok = status_of(project, "iris")
    assert st_ok["eval_rows"] == 150 and st_ok["eval_score"] > 0.95 and st_ok["degraded"] is False
    assert st_ok["eval_source"] == "data/eval.csv"
    # iris holds out 42 rows: too few for its baseline to show a 5% degradation, and status says so
    assert st_ok["note"] == ("performance: 150 rows (vs 42 holdout rows) are too few to detect a degradation "
                             "of 0.05 at quality_alpha 0.01 (smallest detectable: 16.7%)")

    write_eval(project, rows, relabel=True)
    second = project.cli("check")
    assert second.exit_code == 0, second.stderr
    # the training data has not changed since v1: a retrain could only copy it
    assert second.stdout.splitlines()[1].split()[:4] == ["iris", "unchanged", "performance", "unchanged"]
    assert second.stderr == ("retrainctl: WARNING: iris: not trained: performance degraded on new labelled rows; "
                             "the training data has not changed\n")
    record = project.history("iris")[-1]
    assert (record["trigger_type"], record["status"], record["error_type"], record["version"]) == (
        "performance", "skipped", "unchanged", 1)
    assert record["description"].startswith(
        "performance degraded: accuracy 0 (98% CI 0..0.03023) on 150 rows of data/eval.csv vs baseline 0.9524 "
        "on 42 holdout rows (100.0% worse, p ")
    assert record["quality_keys"]["performance"].startswith(record["data_hash"] + "|eval:")
    evidence = record["quality_evidence"]["performance"]
    assert (evidence["score"], evidence["n"], evidence["baseline_n"]) == (0.0, 150, 42)
    assert evidence["p_value"] < 1e-30 and evidence["method"] == "Fisher exact, Clopper-Pearson"

    # No loop: the same data and eval data do not fire again, but status still says degraded.
    for _ in range(2):
        again = project.cli("check")
        assert again.exit_code == 0 and again.stdout.splitlines()[1].split()[:3] == ["iris", "no", "-"]
    assert iris_history(project) == [("initial", "success"), ("performance", "skipped")]
    st_bad = status_of(project, "iris")
    assert st_bad["due"] is False and st_bad["degraded"] is True
    assert st_bad["eval_score"] == 0.0 and st_bad["eval_degradation"] == 1.0
    assert st_bad["note"] == ("performance still degraded, but already answered for this training data and "
                              "eval data (a retrain, or none because the training data had not changed); "
                              "waiting for either to change")

    # New training rows with the same evidence: a real retrain, on both triggers.
    data = project.data("iris")
    data.write_text(data.read_text() + "".join(line + "\n" for line in data.read_text().splitlines()[1:11]))
    third = project.cli("check")
    assert third.exit_code == 0, third.stderr
    assert third.stdout.splitlines()[1].split()[:3] == ["iris", "yes", "data_change,performance"]
    record = project.history("iris")[-1]
    assert (record["status"], record["version"]) == ("success", 2)
    assert record["quality_keys"]["performance"].startswith(record["data_hash"] + "|eval:")

    # New evidence (other eval rows) may fire once more; the model is now trained on this data.
    write_eval(project, rows[:120], relabel=True)
    assert project.cli("check").exit_code == 0
    assert iris_history(project)[-1] == ("performance", "skipped")
    assert project.cli("check").exit_code == 0
    assert len(project.history("iris")) == 4


def test_too_few_eval_rows_is_only_a_note(trained):
    project = trained
    _, rows = iris_rows(project)
    write_eval(project, rows[:12], relabel=True)
    project.set_model("iris", eval_path="data/eval.csv")
    out = project.cli("check", "--json")
    assert out.exit_code == 0
    assert json.loads(out.stdout)["models"][0]["due"] is False
    st = json.loads(project.cli("status", "--json", "iris").stdout)["models"][0]
    assert st["note"] == "performance: not enough evidence: 12 labelled row(s) in data/eval.csv, min_eval_rows is 30"
    assert st["eval_rows"] == 12 and st["eval_score"] is None and st["degraded"] is None

    project.set_model("iris", min_eval_rows=10)
    out = project.cli("check", "--json")
    assert json.loads(out.stdout)["models"][0]["due_reasons"][0]["trigger_type"] == "performance"


def test_appended_rows_are_the_eval_data_without_eval_path(trained):
    project = trained
    header, rows = iris_rows(project)
    path = project.data("iris")
    original = path.read_text()

    path.write_text(original + "\n".join(rows[:40]) + "\n")
    dry = json.loads(project.cli("check", "--dry-run", "--json").stdout)["models"][0]
    assert [r["trigger_type"] for r in dry["due_reasons"]] == ["data_change"]

    relabelled = [",".join(r.split(",")[:-1] + [RELABEL[r.split(",")[-1]]]) for r in rows[:40]]
    path.write_text(original + "\n".join(relabelled) + "\n")
    dry = json.loads(project.cli("check", "--dry-run", "--json").stdout)["models"][0]
    assert [r["trigger_type"] for r in dry["due_reasons"]] == ["data_change", "performance"]
    assert dry["due_reasons"][1]["description"].startswith(
        "performance degraded: accuracy 0 (98% CI 0..0.1087) on 40 rows of data/raw/iris.csv (appended rows) "
        "vs baseline 0.9524 on 42 holdout rows (100.0% worse, p 2.1e-21; performance_threshold 0.05, quality_alpha 0.01)")


def test_rmse_direction_on_regression(project):
    project.set_model("housing", metric="rmse")
    assert project.cli("check", "housing").exit_code == 0
    lines = project.data("housing").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    target = header.split(",").index("median_house_value")

    def scaled(factor):
        out = []
        for r in rows[:100]:
            cells = r.split(",")
            cells[target] = str(float(cells[target]) * factor)
            out.append(",".join(cells))
        return out

    eval_path = project.root / "data" / "housing_eval.csv"
    project.set_model("housing", eval_path="data/housing_eval.csv")
    eval_path.write_text("\n".join([header, *scaled(1.0)]) + "\n")
    assert project.cli("check", "housing").exit_code == 0
    st = json.loads(project.cli("status", "--json", "housing").stdout)["models"][0]
    assert st["degraded"] is False and st["due"] is False and st["eval_rows"] == 100
    assert st["eval_score"] < st["eval_baseline"] * 1.05

    eval_path.write_text("\n".join([header, *scaled(3.0)]) + "\n")
    out = json.loads(project.cli("check", "--json", "housing").stdout)["models"][0]
    assert out["due_reasons"][0]["trigger_type"] == "performance"
    assert "rmse" in out["due_reasons"][0]["description"] and "% worse" in out["due_reasons"][0]["description"]
    st = json.loads(project.cli("status", "--json", "housing").stdout)["models"][0]
    assert st["eval_score"] > st["eval_baseline"] and st["eval_degradation"] > 0.05 and st["degraded"] is True


def test_eval_file_problems_are_notes_not_failures(trained):
    project = trained
    project.set_model("iris", eval_path="data/missing.csv")
    out = project.cli("check", "iris")
    assert out.exit_code == 0
    st = json.loads(project.cli("status", "--json", "iris").stdout)["models"][0]
    assert st["quality_notes"] == [f"performance: {project.root}/data/missing.csv: data file not found"]

    (project.root / "data" / "bad.csv").write_text("a,b\n" + "1,2\n" * 40)
    project.set_model("iris", eval_path="data/bad.csv")
    assert project.cli("check", "iris").exit_code == 0
    st = json.loads(project.cli("status", "--json", "iris").stdout)["models"][0]
    assert st["quality_notes"] == [
        f"performance: {project.root}/data/bad.csv: target column 'Species' not found (columns: a, b)"]


def test_model_is_checksummed_before_it_is_scored(trained):
    project = trained
    _, rows = iris_rows(project)
    write_eval(project, rows, relabel=True)
    model_file = project.model_dir / "iris" / "v1" / "model.joblib"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    project.set_model("iris", eval_path="data/eval.csv")
    st = json.loads(project.cli("status", "--json", "iris").stdout)["models"][0]
    assert st["due"] is False and st["eval_score"] is None
    assert len(st["quality_notes"]) == 1
    assert st["quality_notes"][0].startswith(f"performance: {model_file}: checksum does not match metadata.json")


# --- drift trigger ------------------------------------------------------------------------------


def write_inputs(project, shift=0.0, name="recent.csv"):
    header, rows = iris_rows(project)
    cols = header.split(",")
    petal = cols.index("PetalLengthCm")
    out = []
    for r in rows:
        cells = r.split(",")
        cells[petal] = f"{float(cells[petal]) + shift:.2f}"
        out.append(",".join(cells[:-1]))        # unlabelled: no Species column
    path = project.root / "data" / name
    path.write_text("\n".join([",".join(cols[:-1]), *out]) + "\n")
    return path


def test_unshifted_inputs_do_not_drift_and_shifted_ones_alert_without_retraining(trained):
    project = trained  # iris v1 as its first check wrote it
    meta = json.loads((project.model_dir / "iris" / "v1" / "metadata.json").read_text())
    assert set(meta["reference"]) == {"SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"}
    petal = meta["reference"]["PetalLengthCm"]
    assert petal["kind"] == "numeric" and petal["n"] == 150 and sum(petal["counts"]) == 150
    assert meta["data_lines"] == 150 and meta["baseline"]["method"] == "exact"

    write_inputs(project)
    _, rows = iris_rows(project)
    write_eval(project, rows)
    project.set_model("iris", drift_path="data/recent.csv", eval_path="data/eval.csv")
    out = project.cli("check", "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["models"][0]["due"] is False
    st = status_of(project, "iris")
    assert (st["drifted"], st["drifted_features"], st["drift_rows"], st["drift_action"]) == (False, {}, 150, "alert")
    assert max(st["drift_psi"].values()) < 0.05 and min(st["drift_p_values"].values()) > 0.5
    assert st["degraded"] is False and st["eval_p_value"] > 0.05 and st["eval_rows"] == 150
    # a declared model is tested alone: no correction across segments
    assert [st[k] for k in ("eval_p_adjusted", "eval_correction", "drift_p_value", "drift_p_adjusted",
                            "drift_correction")] == [None] * 5
    assert st["eval_ci"][0] < st["eval_score"] <= st["eval_ci"][1] and st["eval_method"] == "Fisher exact, Clopper-Pearson"

    # drift_action alert (the default): drift is a signal in status, not a retrain
    write_inputs(project, shift=3.0)
    for _ in range(2):
        out = project.cli("check")
        assert out.exit_code == 0, out.stderr
        # shifted by 3 cm, most values are beyond the training maximum: the range test sees them first
        assert out.stdout.splitlines()[1].split()[:6] == ["iris", "no", "drift", "alert:", "PetalLengthCm:range,",
                                                          "PetalLengthCm"]
    assert iris_history(project) == [("initial", "success")]
    st = status_of(project, "iris")
    assert st["due"] is False and st["drifted"] is True
    assert list(st["drifted_features"]) == ["PetalLengthCm:range", "PetalLengthCm"]
    assert st["drift_p_values"]["PetalLengthCm"] < 1e-6 and st["drift_p_values"]["PetalLengthCm:range"] < 1e-6
    assert st["drift_note"].startswith("input drift in data/recent.csv: PSI PetalLengthCm:range ")
    assert "Holm over 5 test(s) of 4 feature(s)" in st["drift_note"]
    assert st["drift_note"].endswith("; drift_action alert: a signal, not a retrain")
    metrics = project.cli("metrics")
    assert metrics.exit_code == 0, metrics.stderr
    lines = metrics.stdout.splitlines()
    assert 'model_input_drifted{model_name="iris"} 1.0' in lines
    assert [line.split(" ")[0] for line in lines if line.startswith("model_feature_drift_psi{")] == [
        'model_feature_drift_psi{feature="PetalLengthCm:range",model_name="iris"}',
        'model_feature_drift_psi{feature="PetalLengthCm",model_name="iris"}']


def test_drift_action_retrain_answers_once_per_drift_evidence(trained):
    project = trained
    write_inputs(project, shift=3.0)
    project.set_model("iris", drift_path="data/recent.csv", drift_action="retrain")
    out = project.cli("check")
    assert out.exit_code == 0, out.stderr
    # the training data has not changed: a retrain could only copy v1, so none runs, and it says why
    assert out.stdout.splitlines()[1].split()[:4] == ["iris", "unchanged", "drift", "unchanged"]
    assert out.stderr == ("retrainctl: WARNING: iris: not trained: drift in production inputs; "
                          "the training data has not changed\n")
    record = project.history("iris")[-1]
    assert (record["trigger_type"], record["status"], record["error_type"]) == ("drift", "skipped", "unchanged")
    assert record["description"].startswith("input drift in data/recent.csv: PSI PetalLengthCm:range ")
    assert "; drift in production inputs; the training data has not changed; not trained: " in record["description"]
    assert record["quality_keys"]["drift"].startswith(record["data_hash"] + "|drift:")
    evidence = record["quality_evidence"]["drift"]
    assert evidence["tested"] == 4 and set(evidence["drifted_features"]) == {"PetalLengthCm:range", "PetalLengthCm"}
    assert evidence["p_adjusted"]["PetalLengthCm"] < 1e-6

    # No loop: the same drift on the same data is not answered again.
    for _ in range(2):
        assert project.cli("check").exit_code == 0
    assert iris_history(project) == [("initial", "success"), ("drift", "skipped")]
    st = status_of(project, "iris")
    assert st["due"] is False and st["drifted"] is True and st["model_version"] == 1
    assert st["drifted_features"]["PetalLengthCm"] > 0.2
    assert st["note"] == ("drift still degraded, but already answered for this training data and drift inputs "
                          "(a retrain, or none because the training data had not changed); waiting for either "
                          "to change")


def test_a_model_trained_before_counts_and_baselines_still_gets_both_tests(trained):
    project = trained
    path = project.model_dir / "iris" / "v1" / "metadata.json"
    meta = json.loads(path.read_text())
    del meta["baseline"]
    for stats in meta["reference"].values():   # the older format: shares only, missing as a bin
        c, n = stats.pop("counts"), stats.pop("n")
        old = [c[0] + c[1], *c[2:-2], c[-2] + c[-1], stats.pop("missing", 0)]
        stats["proportions"] = [k / n for k in old]
        for key in ("layout", "min", "max"):
            stats.pop(key, None)
    path.write_text(json.dumps(meta))
    write_inputs(project, shift=3.0)
    _, rows = iris_rows(project)
    write_eval(project, rows, relabel=True)
    project.set_model("iris", drift_path="data/recent.csv", eval_path="data/eval.csv")
    st = status_of(project, "iris")
    assert st["quality_notes"] == []
    assert st["drifted"] is True and list(st["drifted_features"]) == ["PetalLengthCm"]
    assert st["degraded"] is True and st["eval_baseline_rows"] == 42 and st["eval_p_value"] < 1e-30


def test_categorical_drift_and_threshold(trained):
    project = trained
    lines = project.data("housing").read_text().splitlines()
    header = lines[0]
    ocean = header.split(",").index("ocean_proximity")
    rows = []
    for r in lines[1:]:
        cells = r.split(",")
        cells[ocean] = "ISLAND"
        rows.append(",".join(cells))
    (project.root / "data" / "housing_recent.csv").write_text("\n".join([header, *rows]) + "\n")
    project.set_model("housing", drift_path="data/housing_recent.csv", drift_action="retrain")
    out = json.loads(project.cli("check", "--dry-run", "--json", "housing").stdout)["models"][0]
    assert [r["trigger_type"] for r in out["due_reasons"]] == ["drift"]
    assert out["due_reasons"][0]["description"].startswith("input drift in data/housing_recent.csv: PSI ocean_proximity ")
    st = json.loads(project.cli("status", "--json", "housing").stdout)["models"][0]
    assert list(st["drifted_features"]) == ["ocean_proximity"] and st["drift_psi"]["median_income"] < 0.01

    project.set_model("housing", drift_threshold=50.0)
    out = json.loads(project.cli("check", "--dry-run", "--json", "housing").stdout)["models"][0]
    assert out["due"] is False
    project.set_model("housing", drift_threshold=0.2, drift_exclude=["ocean_proximity"])
    st = json.loads(project.cli("status", "--json", "housing").stdout)["models"][0]
    assert st["drifted"] is False and "ocean_proximity" not in st["drift_p_values"]
    project.set_model("housing", drift_exclude=None, drift_thresholds={"ocean_proximity": 50.0})
    assert json.loads(project.cli("status", "--json", "housing").stdout)["models"][0]["drifted"] is False
    project.set_model("housing", drift_thresholds=None, drift_features=["median_income", "ocaen_proximity"])
    st = json.loads(project.cli("status", "--json", "housing").stdout)["models"][0]
    assert st["quality_notes"] == ["drift: drift_features/drift_exclude/drift_thresholds name feature(s) "
                                   "model v1 was not trained on: ocaen_proximity"]


def test_drift_inputs_missing_a_feature(trained):
    project = trained
    (project.root / "data" / "recent.csv").write_text("SepalLengthCm\n" + "5.0\n" * 40)
    project.set_model("iris", drift_path="data/recent.csv")
    assert project.cli("check", "iris").exit_code == 0
    st = json.loads(project.cli("status", "--json", "iris").stdout)["models"][0]
    assert st["quality_notes"] == [f"drift: {project.root}/data/recent.csv: feature column(s) not found: "
                                   "SepalWidthCm, PetalLengthCm, PetalWidthCm"]



def test_malformed_drift_file_is_a_note_not_a_crash(trained):
    project = trained
    header = "SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n"
    (project.root / "data" / "recent.csv").write_text(header + "1,2,3," + "x" * 200_000 + "\n" + "5,3,1,0\n" * 40)
    project.set_model("iris", drift_path="data/recent.csv")
    project.append_rows("housing", 5)
    r = project.run("check")  # a fresh process: csv's default field size limit applies
    assert r.returncode == 0, r.stderr  # housing still retrained; iris just carries a note
    assert [(e["model_name"], e["status"]) for e in project.history()][-1] == ("housing", "success")
    st = json.loads(project.run("status", "--json", "iris").stdout)["models"][0]
    assert st["quality_notes"][0].startswith(f"drift: {project.root}/data/recent.csv: cannot parse CSV at row 1: field larger than field limit")


# --- cost of a no-op check ----------------------------------------------------------------------

NOOP_CHECK = """
import json, sys
from retrainctl import load_config
from retrainctl import check
report = check(load_config(sys.argv[1]))
print(json.dumps({"exit": report.exit_code, "results": [o.result for o in report.outcomes],
                  "heavy": sorted(m for m in ("pandas", "sklearn", "numpy", "scipy", "joblib", "mlflow") if m in sys.modules)}))
"""


def noop_check(project):
    out = subprocess.run([sys.executable, "-c", NOOP_CHECK, str(project.config_path)], cwd="/",
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_noop_check_with_quality_triggers_imports_nothing_heavy(project):
    _, rows = iris_rows(project)
    write_eval(project, rows)
    write_inputs(project)
    project.set_model("iris", eval_path="data/eval.csv", drift_path="data/recent.csv")
    assert project.cli("check").exit_code == 0         # trains, then evaluates and caches
    assert project.cli("status").exit_code == 0
    cache = json.loads((project.state_dir / "quality.json").read_text())
    assert set(cache["iris"]) == {"performance", "drift"}

    assert noop_check(project) == {"exit": 0, "results": ["up to date", "up to date"], "heavy": []}

    # New (still correct) eval data: the model is scored again, which needs the ML stack.
    write_eval(project, rows[:100])
    changed = noop_check(project)
    assert changed["results"] == ["up to date", "up to date"] and "sklearn" in changed["heavy"]
    assert noop_check(project)["heavy"] == []


# --- config -------------------------------------------------------------------------------------


def test_quality_config_keys(project):
    project.set_model("iris", eval_pth="data/eval.csv")
    out = project.cli("config")
    assert out.exit_code == 2
    assert out.stderr == (f"Error: {project.config_path}: models.iris.eval_pth: unknown key 'eval_pth'; "
                          "did you mean 'eval_path'?\n")
    del project.config["models"]["iris"]["eval_pth"]
    project.config["defaults"]["drift_threshold"] = 0
    project.write_config()
    out = project.cli("config")
    assert out.exit_code == 2 and out.stderr.endswith("defaults.drift_threshold: must be > 0, got 0\n")
    project.config["defaults"]["drift_threshold"] = 0.3
    project.set_model("iris", eval_path="data/eval.csv", drift_path="data/recent.csv", min_eval_rows=50)
    out = project.cli("config", "--model", "iris")
    assert out.exit_code == 0, out.stderr
    import yaml

    iris = yaml.safe_load(out.stdout)["models"]["iris"]
    assert iris["eval_path"] == str(project.root / "data" / "eval.csv")
    assert iris["drift_path"] == str(project.root / "data" / "recent.csv")
    assert (iris["min_eval_rows"], iris["drift_threshold"]) == (50, 0.3)
    assert yaml.safe_load(project.cli("config", "--model", "housing").stdout)["models"]["housing"]["min_eval_rows"] == 30


@pytest.mark.parametrize("key, value, message", [
    ("quality_alpha", 0.5, "must be more than 0 and less than 0.5, got 0.5"),
    ("drift_share", 1.5, "must be between 0 and 1, got 1.5"),
    ("drift_action", "page", "must be one of: alert, retrain, got 'page'"),
    ("drift_features", [], "must list at least one feature, got []"),
    ("drift_thresholds", {"x": 0}, "must map feature names to PSI thresholds > 0, got {'x': 0}"),
])
def test_quality_test_keys_are_validated(project, key, value, message):
    project.set_model("iris", **{key: value})
    result = project.cli("config")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {project.config_path}: models.iris.{key}: {message}\n"


def test_quality_test_keys_defaults(project):
    import yaml

    project.set_model("iris", drift_exclude=["SepalWidthCm"], drift_thresholds={"PetalLengthCm": 0.5})
    iris = yaml.safe_load(project.cli("config", "--model", "iris").stdout)["models"]["iris"]
    assert (iris["quality_alpha"], iris["drift_share"], iris["drift_action"]) == (0.01, 0.0, "alert")
    assert iris["drift_exclude"] == ["SepalWidthCm"] and iris["drift_thresholds"] == {"PetalLengthCm": 0.5}


def test_a_drift_file_with_a_column_named_twice_is_an_error_naming_it(tmp_path):
    from retrainctl.observe.evaluation import drift_tests

    path = tmp_path / "drift.csv"
    raw = b"a,b,a\n1,2,3\n4,5,6\n"
    reference = {"a": {"kind": "numeric", "edges": [2.0], "counts": [5, 5, 0], "n": 10}}
    assert drift_tests(raw, str(path), reference) == {
        "error": f"{path}: column(s) named more than once in the header: a"}


def test_the_tests_of_an_entrys_segments_are_corrected_together_in_status(tmp_path):
    """Eight stores, one model each; in store s000's recent rows prices jumped and their effect on
    units flipped. Each store judged (a model, at least min_eval_rows rows of its own) is one
    member of its entry's family per test; `status --json` shows its raw p-value, the
    Benjamini-Hochberg adjusted one (checked here against the raw p-values of the family) and the
    procedure; s000 is still caught, a store too small to judge is no member."""
    from tests.test_segments import Shop

    shop = Shop(tmp_path / "proj")
    shop.write_recent()
    shop.checked()
    shop.set_model("sales", eval_path="data/eval.csv", drift_path="data/recent.csv")
    result = shop.cli("status", "--json", "sales")
    assert result.exit_code == 0, result.output
    rows = {r["model_name"]: r for r in json.loads(result.stdout)["models"]}
    for kind, raw, adjusted, correction in (("performance", "eval_p_value", "eval_p_adjusted", "eval_correction"),
                                            ("drift", "drift_p_value", "drift_p_adjusted", "drift_correction")):
        judged = {n: r for n, r in rows.items() if r["degraded" if kind == "performance" else "drifted"] is not None}
        assert len(judged) >= 3 and "sales:s000" in judged and "sales:s007" not in judged
        p = sorted((r[raw], n) for n, r in judged.items())
        m = len(p)
        expected = {}
        running = 1.0
        for rank in range(m, 0, -1):
            running = min(running, p[rank - 1][0] * m / rank)
            expected[p[rank - 1][1]] = running
        for name, row in judged.items():
            assert row[adjusted] == pytest.approx(expected[name], rel=1e-9), (kind, name)
            assert row[correction] == {"procedure": "Benjamini-Hochberg", "p_value": float(f"{row[raw]:.4g}"),
                                       "p_adjusted": float(f"{expected[name]:.4g}"), "family": m,
                                       "significant": sum(q <= 0.01 for q in expected.values()), "alpha": 0.01}
        assert rows["sales:s007"][raw] is None and rows["sales:s007"][correction] is None
        assert max(expected, key=lambda n: -expected[n]) == "sales:s000" and expected["sales:s000"] < 1e-6
    s000, s002 = rows["sales:s000"], rows["sales:s002"]
    assert s000["drift_p_value"] == pytest.approx(min(s000["drift_p_values"].values()), rel=1e-3)
    assert (s000["degraded"], s000["drifted"], s002["degraded"], s002["drifted"]) == (True, True, False, False)
    family = s000["eval_correction"]["family"]
    assert f"; Benjamini-Hochberg over {family} segment(s): p " in s000["eval_note"]
    assert f"; Benjamini-Hochberg over {s000['drift_correction']['family']} segment(s): p " in s000["drift_note"]
