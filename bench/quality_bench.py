"""`make bench-quality`: false-alarm and detection rates of the performance and drift triggers,
measured on the bundled housing data with fixed seeds.

    .venv/bin/python bench/quality_bench.py [--samples N] [--seed S]

The housing model of etc/retrainctl.yaml is trained by retrainctl's own training task on 70% of
the rows (its metadata.json is what a check reads). From the other 30%, the same population,
samples of 30, 100 and 1,000 rows are drawn (without replacement within a sample): every flag on
them is a false alarm. At 100 rows, shifts measure detection: a numeric feature scaled by 1.5, a
third of its values above the training maximum, two in five of its values missing, a categorical
feature collapsed to one value, a column constant at training (`source_year`) that changes, and
shuffled labels.

A second table measures the performance trigger over time, on generated orders (bench/generate.py:
monthly data with seasonal noise, the noise twice as large in winter as in summer): a model
retrained on every month so far is checked on the next month's labelled rows, with `holdout:
random` and `holdout: latest`; every alarm in a month without a break is false, and the
broken month (prices jump, the price effect flips) must be caught.

A third table measures the promotion gate against a live model that learnt something: candidates
trained on shuffled labels must be rejected, retrains on new rows of the same population must not
be rejected for want of skill (gate_rates).

Each sample goes through the functions `check` and `status` use, minus reading the file and the
cache: evaluation.score_rows (what _score runs on an eval file's bytes) and
evaluation.drift_tests (what _drift runs on a drift file's bytes), then quality's verdicts with the
model's policy, then triggers.decide on the Observation they make (drift with drift_action retrain,
so that a drift flag is a decision too). Prints a Markdown table; exits 1 if a rate misses its target.
"""
import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
# One sample's prediction is tiny: OpenMP threads only spin on a shared machine (5x slower here).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from retrainctl.config.load import load_config  # noqa: E402
from retrainctl.config.records import METRICS  # noqa: E402
from retrainctl.core import decide as triggers  # noqa: E402
from retrainctl.core import quality  # noqa: E402
from retrainctl.observe import evaluation  # noqa: E402
from retrainctl.fit.task import run_task  # noqa: E402

SIZES = (30, 100, 1000)
SHIFT_ROWS = 100
NUMERIC, CATEGORICAL, CONSTANT = "median_income", "ocean_proximity", "source_year"
SEASONAL_SEEDS = 25      # generated years per holdout mode
SEASONAL_MONTHS = range(4, 13)
BROKEN_MONTH = 9
MAX_FALSE_ALARMS, MIN_DETECTION = 0.01, 0.95


def train(model, frame):
    """The training task on a CSV of `frame`: (fitted pipeline, metadata.json's content)."""
    import io

    import joblib

    result = fit(model, frame)
    return joblib.load(io.BytesIO(result.model_bytes)), result.metadata


def judge(model, estimator, meta, sample):
    """(degraded, drifted, due) for one sample, as a check would see it in eval_path and drift_path."""
    raw = sample.to_csv(index=False).encode()
    policy = dataclasses.replace(model.policy, drift_action="retrain")
    spec = model.training_spec().with_features(meta["features"])
    scored = evaluation.score_rows(estimator, raw, "sample.csv", spec, meta, model.metric, policy.quality_alpha)
    perf = quality.performance_verdict(model.metric, scored["test"], scored["rows"], METRICS[model.metric][1],
                                       policy.performance_threshold, policy.quality_alpha, policy.min_eval_rows,
                                       "sample.csv")
    tested = evaluation.drift_tests(raw, "sample.csv", meta["reference"], meta["rows"])
    drift = quality.drift_verdict(tested["tests"], tested["rows"], evaluation.drift_policy(policy),
                                  policy.min_eval_rows, "sample.csv")
    obs = triggers.Observation(
        now=0.0, data_hash="same", data_rows=meta["rows"], model_version=1, model_data_hash="same",
        model_trained_at=0.0,
        performance=triggers.Reason("performance", perf.text) if perf.state == "degraded" else None,
        drift=triggers.Reason("drift", drift.text) if drift.state == "degraded" else None)
    return perf.state == "degraded", drift.state == "degraded", triggers.decide(policy, obs).due


def main(argv=None):
    parser = argparse.ArgumentParser(prog="quality_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="samples per size and per shift (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"argument --samples: expected at least 1, got {args.samples}")

    import numpy as np
    import pandas as pd

    started = time.monotonic()
    config = load_config(str(REPO / "etc" / "retrainctl.yaml"))
    model = config.model("housing")
    model = dataclasses.replace(model, features=None)  # every column, the constant one included
    data = pd.read_csv(model.data_path).assign(**{CONSTANT: 2013})
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(data))
    cut = int(len(data) * 0.7)
    estimator, meta = train(model, data.iloc[order[:cut]])
    pool = data.iloc[order[cut:]].reset_index(drop=True)
    top_category = pool[CATEGORICAL].mode()[0]

    def draw(n):
        return pool.iloc[rng.choice(len(pool), n, replace=False)].reset_index(drop=True)

    def rates(make, n):
        hits = np.array([judge(model, estimator, meta, make(draw(n))) for _ in range(args.samples)])
        return hits.mean(axis=0)

    rows = []
    for n in SIZES:
        degraded, drifted, due = rates(lambda s: s, n)
        rows.append((f"false alarm, performance, n = {n}", degraded, "<=", MAX_FALSE_ALARMS))
        rows.append((f"false alarm, drift, n = {n}", drifted, "<=", MAX_FALSE_ALARMS))
        rows.append((f"false alarm, any retrain (drift_action retrain), n = {n}", due, "<=", 2 * MAX_FALSE_ALARMS))

    def scaled(s):
        return s.assign(**{NUMERIC: s[NUMERIC] * 1.5})

    def collapsed(s):
        return s.assign(**{CATEGORICAL: top_category})

    top = float(data.iloc[order[:cut]][NUMERIC].max())

    def beyond(s):  # a third of the values above anything seen at training
        out = s.copy()
        out.loc[::3, NUMERIC] = top + rng.uniform(0.5, 3.0, len(out.loc[::3]))
        return out

    def constant_moved(s):
        return s.assign(**{CONSTANT: 2099})

    def gaps(s):
        out = s.copy()
        out.loc[rng.random(len(out)) < 0.4, NUMERIC] = np.nan
        return out

    def shuffled(s):
        return s.assign(**{model.target: rng.permutation(s[model.target].to_numpy())})

    rows.append((f"detection, drift: {NUMERIC} x 1.5, n = {SHIFT_ROWS}", rates(scaled, SHIFT_ROWS)[1], ">=", MIN_DETECTION))
    rows.append((f"detection, drift: {CATEGORICAL} all '{top_category}', n = {SHIFT_ROWS}",
                 rates(collapsed, SHIFT_ROWS)[1], ">=", MIN_DETECTION))
    rows.append((f"detection, drift: a third of {NUMERIC} above the training max, n = {SHIFT_ROWS}",
                 rates(beyond, SHIFT_ROWS)[1], ">=", MIN_DETECTION))
    rows.append((f"detection, drift: {CONSTANT} constant at training, then changed, n = {SHIFT_ROWS}",
                 rates(constant_moved, SHIFT_ROWS)[1], ">=", MIN_DETECTION))
    rows.append((f"detection, drift: 40% of {NUMERIC} missing, n = {SHIFT_ROWS}",
                 rates(gaps, SHIFT_ROWS)[1], ">=", MIN_DETECTION))
    rows.append((f"detection, performance: shuffled labels, n = {SHIFT_ROWS}", rates(shuffled, SHIFT_ROWS)[0],
                 ">=", MIN_DETECTION))

    policy = model.policy
    print(f"housing, {model.estimator}, {model.metric}: trained on {cut} rows (holdout {meta['holdout_rows']}), "
          f"samples from the other {len(pool)}; {args.samples} samples per row, seed {args.seed}; "
          f"performance_threshold {policy.performance_threshold:g}, drift_threshold {policy.drift_threshold:g}, "
          f"quality_alpha {policy.quality_alpha:g}, drift_share {policy.drift_share:g}, "
          f"min_eval_rows {policy.min_eval_rows}\n")
    print("| measured | rate | target | |")
    print("| --- | --- | --- | --- |")
    missed = 0
    for name, rate, op, target in rows:
        ok = rate <= target if op == "<=" else rate >= target
        missed += not ok
        print(f"| {name} | {rate:.1%} ({round(rate * args.samples)}/{args.samples}) | {op} {target:.0%} | "
              f"{'PASS' if ok else 'MISS'} |")
    print("\nThe performance trigger over a generated year (seasonal noise), months "
          f"{SEASONAL_MONTHS.start}-{SEASONAL_MONTHS.stop - 1} of {SEASONAL_SEEDS} years without a break for the false "
          f"alarms, month {BROKEN_MONTH} of the same years with a break for the detection:\n")
    print("| measured | rate | target | |")
    print("| --- | --- | --- | --- |")
    for holdout in ("random", "latest"):
        counts = seasonal(holdout)
        for spread in (True, False):
            false_alarms, months, caught = counts[spread]
            label = f"holdout: {holdout}" + ("" if spread else ", without the period spread (0.1's test)")
            for name, rate, op, target in (
                    (f"{label}, false alarm per healthy month", false_alarms / months, "<=", 0.05),
                    (f"{label}, broken month detected", caught / SEASONAL_SEEDS, ">=", 0.9)):
                ok = rate <= target if op == "<=" else rate >= target
                # `latest` with the spread is what the docs recommend for data over time; the rest informs
                missed += not ok and holdout == "latest" and spread
                verdict = ("PASS" if ok else "MISS") if spread else "(for comparison)"
                print(f"| {name} | {rate:.1%} | {op} {target:.0%} | {verdict} |")
    print("\nThe promotion gate against a live model that learnt something, "
          f"{GATE_SEEDS} seeds per row, {GATE_ROWS} training rows per model drawn from housing "
          "(classification: `median_house_value` above its median, HistGradientBoostingClassifier):\n")
    print("| measured | rate | target | |")
    print("| --- | --- | --- | --- |")
    for name, rate, op, target in gate_rates(model, data.drop(columns=[CONSTANT])):
        ok = target is None or (rate <= target if op == "<=" else rate >= target)
        missed += not ok and target is not None
        verdict = ("PASS" if ok else "MISS") if target is not None else "(for comparison)"
        print(f"| {name} | {rate:.1%} | {op + ' ' + format(target, '.0%') if target is not None else '-'} | {verdict} |")
    print(f"\n{time.monotonic() - started:.0f} s")
    return 1 if missed else 0


GATE_SEEDS = 40
GATE_ROWS = 1000


def gate_rates(model, data):
    """[(row, rate, op, target)] of the promotion gate: a live model trained on GATE_ROWS rows;
    a candidate trained on as many other rows with the labels shuffled (an export that misaligned
    them) must be rejected; one trained on other rows of the same population must not be
    rejected for want of skill. The gate is decide.gate with decide.skill_problem, as attempt.py
    calls it; "without the skill check" is the gate of 0.2."""
    import numpy as np

    target = model.target
    classes = data.assign(expensive=data[target] > data[target].median()).drop(columns=[target])
    variants = [("regression, r2", model, data),
                ("classification, accuracy",
                 dataclasses.replace(model, target="expensive", task="classification", metric="accuracy",
                                     estimator="sklearn.ensemble.HistGradientBoostingClassifier"), classes)]
    rows = []
    for label, m, frame in variants:
        higher, tolerance = m.higher_is_better, m.policy.promotion_tolerance
        caught = old_caught = wrongly = 0
        for seed in range(GATE_SEEDS):
            rng = np.random.default_rng(1000 + seed)
            order = rng.permutation(len(frame))
            live_rows = frame.iloc[order[:GATE_ROWS]]
            new_rows = frame.iloc[order[GATE_ROWS:2 * GATE_ROWS]].reset_index(drop=True)
            live = fit(m, live_rows)
            shuffled = new_rows.assign(**{m.target: new_rows[m.target].to_numpy()[rng.permutation(len(new_rows))]})
            for candidate_rows, noise in ((shuffled, True), (new_rows, False)):
                cand = fit(m, candidate_rows, live.model_bytes)
                no_skill = triggers.skill_problem(triggers.skill_of(cand.metadata), triggers.skill_of(live.metadata),
                                                  higher, m.metric, 1)
                verdict = triggers.gate(cand.score, cand.champion_score, higher, tolerance, cand.sanity_problem,
                                        no_skill=no_skill)
                if noise:
                    caught += not verdict.promote
                    old_caught += not triggers.gate(cand.score, cand.champion_score, higher, tolerance,
                                                    cand.sanity_problem).promote
                else:
                    wrongly += no_skill is not None
        rows += [(f"{label}: shuffled labels rejected", caught / GATE_SEEDS, ">=", MIN_DETECTION),
                 (f"{label}: shuffled labels rejected, without the skill check", old_caught / GATE_SEEDS, ">=", None),
                 (f"{label}: a retrain on new rows of the same population rejected for no skill",
                  wrongly / GATE_SEEDS, "<=", MAX_FALSE_ALARMS)]
    return rows


def fit(model, frame, champion_bytes=None):
    """The training task's FitResult on a CSV of `frame`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.csv")
        frame.to_csv(path, index=False)
        return run_task(model.training_spec(), path, None, champion_bytes)


def seasonal(holdout):
    """{with the period spread: (false alarms, healthy months, broken months caught)} of the
    performance trigger, each month judged by a model trained on every month before it, as a
    monthly retrain would, in generated years without a break (false alarms) and with one
    (detection); with the spread and without it (the baseline's period_sd dropped)."""
    import io

    import joblib
    import pandas as pd

    from generate import orders

    from retrainctl.config.records import CsvOptions, TrainingSpec

    spec = TrainingSpec(name="orders", target="units", task="regression", metric="mae",
                        features=("store", "promo", "price", "temp"), estimator="sklearn.linear_model.Ridge",
                        trainer=None, params={}, test_size=0.2, random_state=0, csv=CsvOptions(), feature_types={},
                        holdout=holdout, time_column="ts")
    policy = load_config(str(REPO / "etc" / "retrainctl.yaml")).defaults
    counts = {True: [0, 0, 0], False: [0, 0, 0]}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.csv")
        for seed in range(SEASONAL_SEEDS):
            # a year without a break: every alarm is false; the same year with a break in
            # BROKEN_MONTH: that month must alarm (the months after it are a broken world)
            for broken in (False, True):
                frames = orders(months=12, rows_per_month=500, seed=1000 + seed,
                                break_months=(BROKEN_MONTH,) if broken else ())
                for month in ([BROKEN_MONTH] if broken else SEASONAL_MONTHS):
                    pd.concat(frames[:month - 1], ignore_index=True).to_csv(path, index=False)
                    result = run_task(spec, path, None)
                    estimator = joblib.load(io.BytesIO(result.model_bytes))
                    raw = frames[month - 1].to_csv(index=False).encode()
                    for spread in (True, False):
                        meta = result.metadata if spread else dict(
                            result.metadata, baseline={k: v for k, v in result.metadata["baseline"].items()
                                                       if k not in ("period_sd", "periods")})
                        scored = evaluation.score_rows(estimator, raw, "month.csv", spec, meta, "mae",
                                                       policy.quality_alpha)
                        verdict = quality.performance_verdict("mae", scored["test"], scored["rows"], False,
                                                              policy.performance_threshold, policy.quality_alpha,
                                                              policy.min_eval_rows, "month.csv")
                        alarm = verdict.state == "degraded"
                        if broken:
                            counts[spread][2] += alarm
                        else:
                            counts[spread][1] += 1
                            counts[spread][0] += alarm
    return {spread: tuple(c) for spread, c in counts.items()}


if __name__ == "__main__":
    sys.exit(main())
