"""The MLflow baseline of benchmark rows 6 and 8: what an expert would hand-write to retrain a model
and put it into MLflow without retrainctl: read the CSV, fit the pipeline retrainctl builds
(median-impute numbers, impute and one-hot encode the rest, HistGradientBoostingRegressor),
log it to a run with its parameters, a signature and explicit pip requirements (no inference;
cloudpickle, which needs no list of trusted types),
register it and point the `champion` alias at the new version.

    python bench/mlflow_fit.py DATA.csv TARGET TRACKING_URI MODEL_NAME
"""
import sys


def main(data_path, target, uri, name):
    from importlib import metadata

    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from bare_fit import fit  # the same read and fit as the bare script (this folder is on sys.path)

    df, pipeline = fit(data_path, target)

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(f"{name}_by_hand")
    sample = df.head(100)
    requirements = [f"{p}=={metadata.version(p)}" for p in ("mlflow", "scikit-learn", "numpy", "pandas", "scipy")]
    with mlflow.start_run():
        mlflow.log_params({"estimator": "sklearn.ensemble.HistGradientBoostingRegressor", "rows": len(df)})
        info = mlflow.sklearn.log_model(pipeline, name="model", signature=infer_signature(sample, pipeline.predict(sample)),
                                        pip_requirements=requirements, serialization_format="cloudpickle")
    version = mlflow.register_model(info.model_uri, name)
    MlflowClient().set_registered_model_alias(name, "champion", version.version)


if __name__ == "__main__":
    main(*sys.argv[1:5])
