"""The baseline of benchmark rows 6, 8 and 9: what a hand-written cron script would do to retrain
the housing model, with nothing around it: read the CSV (or, row 9, a directory of Parquet
partitions with pandas.read_parquet), fit the same pipeline retrainctl builds (median-impute
numbers, impute and one-hot encode the rest, HistGradientBoostingRegressor), dump it with joblib.
Row 8 runs it on a million rows with another target column.

    python bench/bare_fit.py DATA.csv|DIRECTORY OUT.joblib [TARGET [MAX_ITER]]
"""
import os
import sys


def fit(data_path, target, max_iter="100"):
    """(feature frame, fitted pipeline): the part bench/mlflow_fit.py shares."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    # A directory: the files' own columns, as retrainctl reads a data set (pyarrow would add the
    # folders' `date=...` key as a categorical column, one-hot encoded into extra features).
    df = pd.read_parquet(data_path, partitioning=None) if os.path.isdir(data_path) else pd.read_csv(data_path)
    y = df.pop(target)
    numeric = list(df.select_dtypes(include="number").columns)
    categorical = [c for c in df.columns if c not in numeric]
    pipeline = Pipeline([
        ("preprocess", ColumnTransformer([
            ("num", SimpleImputer(strategy="median"), numeric),
            ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                              ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]), categorical),
        ])),
        ("model", HistGradientBoostingRegressor(random_state=0, max_iter=int(max_iter))),
    ])
    return df, pipeline.fit(df, y)


def main(data_path, out_path, target="median_house_value", max_iter="100"):
    import joblib

    _, pipeline = fit(data_path, target, max_iter)
    joblib.dump(pipeline, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:5])
