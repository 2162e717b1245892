"""Data that looks like a user's, for the tests and the benchmarks: a year of daily orders with a
time axis, ids, seasonality, missing values, rows without a label (cancelled orders), numeric and
boolean labels, monthly partitions in mixed formats. Seeded: the same call gives the same rows."""
import math
from pathlib import Path

import numpy as np
import pandas as pd

START = pd.Timestamp("2025-01-01", tz="UTC")


def orders(months=12, rows_per_month=600, seed=0, break_months=(), stores=8, missing_target=0.08):
    """A year of orders, one row each: `order_id` (a row number), `ts` (a timestamp), `store`
    (skewed sizes), `promo` (bool), `price` (some missing), `temp`, `year` (a calendar number),
    `units` (the target; missing for cancelled orders) and `late` (a boolean label: a
    classification target, some missing too). The inputs hold still; the noise is seasonal (twice
    as large in winter as in summer), so a model's error moves from month to month without
    anything going wrong. In `break_months` (1-based) prices jump and how price drives units
    changes sign: the model learnt goes bad, and its inputs drift."""
    rng = np.random.default_rng(seed)
    frames = []
    order_id = 100_000
    weights = np.array([1 / (i + 1) for i in range(stores)])
    names = np.array([f"s{i:03d}" for i in range(stores)])
    for m in range(months):
        n = rows_per_month
        day0 = START + pd.DateOffset(months=m)
        days = ((day0 + pd.DateOffset(months=1)) - day0).days
        ts = day0 + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s")
        month_of_year = (m % 12) + 1
        season = math.cos(2 * math.pi * (month_of_year - 1) / 12)
        store = rng.choice(names, n, p=weights / weights.sum())
        promo = rng.random(n) < 0.2
        broken = m + 1 in break_months
        price = rng.normal(26 if broken else 20, 4, n).round(2)
        temp = (12 + rng.normal(0, 3, n)).round(1)
        store_effect = pd.Series(store).map({s: 5 * i for i, s in enumerate(names)}).to_numpy()
        beta = 1.5 if broken else -1.2
        noise = rng.normal(0, 6 * (1 + 0.35 * season), n)
        units = 60 + store_effect + beta * price + 8 * promo + 0.8 * temp + noise
        late = (0.03 * price + 0.5 * promo + rng.normal(0, 0.6, n)) > 1.0
        frame = pd.DataFrame({
            "order_id": np.arange(order_id, order_id + n), "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "store": store, "promo": promo, "price": price, "temp": temp,
            "year": ts.year, "units": units.round(1), "late": late})
        order_id += n
        frame.loc[rng.random(n) < 0.05, "price"] = np.nan
        cancelled = rng.random(n) < missing_target
        frame["units"] = frame["units"].where(~cancelled)
        frame["late"] = frame["late"].astype(object).where(~cancelled, None)
        frames.append(frame)
    return frames


def write_month(frame, folder, month, fmt=None):
    """One month as a partition `month=YYYY-MM/part-0.<fmt>`: odd months Parquet, even months CSV,
    the last quarter gzipped CSV (the formats a real export drifts through); returns its path."""
    fmt = fmt or ("csv.gz" if month >= 10 else "parquet" if month % 2 else "csv")
    stamp = (START + pd.DateOffset(months=month - 1)).strftime("%Y-%m")
    path = Path(folder) / f"month={stamp}" / f"part-0.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        out = frame.copy()
        out["late"] = out["late"].astype("boolean")
        out.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, compression="gzip" if fmt == "csv.gz" else None)
    return path
