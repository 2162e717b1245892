import re

from setuptools import find_packages, setup

# The version lives in retrainctl/base/version.py only; read it without importing the package,
# whose dependencies are not installed yet when pip builds it.
with open("retrainctl/base/version.py", encoding="utf-8") as fh:
    VERSION = re.search(r'^__version__ = "([^"]+)"$', fh.read(), re.M)[1]

setup(
    name="retrainctl",
    version=VERSION,
    description="Keep scikit-learn models fresh from cron or a systemd timer, statelessly.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["retrainctl", "retrainctl.*"]),
    # The JSON Schema of each --json output, for programs that read them (docs/json.md).
    package_data={"retrainctl.schemas": ["*.json"]},
    install_requires=[
        "click>=8.1",
        # release versions compared as PEP 440 (`status` warns of state written by a newer release)
        "packaging>=23",
        "PyYAML>=6.0",
        "filelock>=3.12",
        # BLAKE3 hashes data files at several GB/s, 2-5x faster than md5/sha256 here.
        "blake3>=0.4",
        "scikit-learn>=1.4",
        "pandas>=2.0",
        # Parquet data sets: footer row counts, reading partitions (already installed with mlflow,
        # declared because retrainctl imports it itself); concat_tables(promote_options=) needs 14.
        "pyarrow>=14",
        "numpy>=1.24",
        "joblib>=1.3",
        "mlflow>=3.0",
        "prometheus-client>=0.20",
        # `report` draws its charts as inline SVG (imported only by that command). MLflow already
        # pulls matplotlib in; named here so the report does not depend on MLflow's dependencies.
        "matplotlib>=3.7",
    ],
    extras_require={
        "test": ["pytest>=8.0", "hypothesis>=6.100",
                 # the metrics tests: a bcrypt hash for the Pushgateway's basic auth, a self-signed TLS cert
                 "bcrypt>=4.0", "cryptography>=41",
                 # the notification tests post through apprise's json:// URLs to a local server
                 "apprise>=1.6",
                 # webhook deliveries are checked by the Standard Webhooks verifier receivers use, and
                 # the Markdown report by a CommonMark renderer that lets raw HTML through
                 "standardwebhooks>=1.0", "markdown-it-py>=3.0",
                 # the suite runs in parallel (a 2-core machine: ~2x) with a --dist loadgroup for
                 # tests that must share a worker
                 "pytest-xdist>=3.5",
                 # `make test` type-checks the package and holds its layers to .importlinter
                 "mypy>=1.10", "import-linter>=2.1",
                 # the --json outputs are validated against their shipped JSON Schemas (draft 2020-12)
                 "jsonschema>=4.18"],
        # Fits on a Dask cluster (executor: {type: dask}); fsspec lets workers read s3:// and other URLs.
        "dask": ["dask>=2024.1", "distributed>=2024.1", "fsspec>=2024.1"],
        # Chat and mail notifications (notify.apprise: Slack, Teams, Matrix, email... URLs).
        "notify": ["apprise>=1.6"],
    },
    entry_points={"console_scripts": ["retrainctl=retrainctl.cli:main"]},
)
