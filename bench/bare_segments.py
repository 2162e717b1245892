"""The baseline of benchmark row 10: what a hand-written script does to train one model per store
with nothing around it: read the CSV (or each CSV of a folder, one model per file), keep the
labelled rows, group them by store, fit the pipeline retrainctl builds for these columns
(median-impute the numbers, Ridge) per group in a loop, and dump each with joblib.

    python bench/bare_segments.py DATA.csv|FOLDER OUT_FOLDER
"""
import os
import sys

FEATURES = ["price", "temp"]


def pipeline():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline

    return Pipeline([("preprocess", ColumnTransformer([("num", SimpleImputer(strategy="median"), FEATURES)])),
                     ("model", Ridge())])


def main(data, out):
    import joblib
    import pandas as pd

    os.makedirs(out, exist_ok=True)
    if os.path.isdir(data):
        groups = ((name[:-4], pd.read_csv(os.path.join(data, name))) for name in sorted(os.listdir(data)))
    else:
        groups = pd.read_csv(data).groupby("store")
    for key, frame in groups:
        frame = frame.dropna(subset=["units"])
        joblib.dump(pipeline().fit(frame[FEATURES], frame["units"]), os.path.join(out, f"{key}.joblib"))


if __name__ == "__main__":
    main(*sys.argv[1:3])
