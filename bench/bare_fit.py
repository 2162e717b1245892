"""The baseline of benchmark row 6: what a hand-written cron script would do to retrain the
housing model, with nothing around it: read the CSV, fit the same pipeline retrainctl builds
(median-impute numbers, impute and one-hot encode the rest, HistGradientBoostingRegressor),
dump it with joblib. Row 8 runs it on a million rows with another target column.

    python bench/bare_fit.py DATA.csv OUT.joblib [TARGET]
"""
import sys


def fit(data_path, target):
    """(feature frame, fitted pipeline): the part bench/mlflow_fit.py shares."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    df = pd.read_csv(data_path)
    y = df.pop(target)
    numeric = list(df.select_dtypes(include="number").columns)
    categorical = [c for c in df.columns if c not in numeric]
    pipeline = Pipeline([
        ("preprocess", ColumnTransformer([
            ("num", SimpleImputer(strategy="median"), numeric),
            ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                              ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]), categorical),
        ])),
        ("model", HistGradientBoostingRegressor(random_state=0)),
    ])
    return df, pipeline.fit(df, y)


def main(data_path, out_path, target="median_house_value"):
    import joblib

    _, pipeline = fit(data_path, target)
    joblib.dump(pipeline, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:4])
