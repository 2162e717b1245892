"""What a config may cost and what it may say: bounds on its size and on YAML alias expansion,
a holdout too small for the gate, model names YAML reads as something else, and `x-` templates
for many similar models. The refusals go through the installed command (refused()); the messages
are those docs/configuration.md shows. What trains or validates models runs in-process, where the
config validation's scikit-learn imports are already paid."""
import json
import time

import pytest
import yaml

from tests.conftest import REPO

DOC = (REPO / "docs" / "configuration.md").read_text()
MODEL = """  iris:
    data_path: data/raw/iris.csv
    target: Species
    task: classification
"""


def refused(project, *args, documented=True):
    """Run the installed command: exit 2 with one line naming the config file; the rest of it,
    which docs/configuration.md shows as it is (when `documented`)."""
    result = project.run(*args or ("config",))
    prefix = f"Error: {project.config_path}: "
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr.startswith(prefix) and result.stderr.count("\n") == 1, result.stderr
    message = result.stderr[len(prefix):-1]
    assert not documented or f"    Error: /etc/retrainctl/retrainctl.yaml: {message}\n" in DOC
    return message


def billion_laughs(levels=9, fan_out=10):
    """A trainer's params holding `fan_out ** levels` strings through nested aliases, in a few
    hundred bytes of YAML."""
    lines = [f"      l0: &l0 [{', '.join(['lol'] * fan_out)}]"]
    lines += [f"      l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan_out)}]" for i in range(1, levels + 1)]
    return "models:\n" + MODEL + "    trainer: mypkg.train:fit\n    params:\n" + "\n".join(lines) + "\n"


def test_an_alias_bomb_in_a_trainers_params_fails_fast_naming_the_file(project):
    text = billion_laughs()
    assert len(text) < 1000
    project.config_path.write_text(text)
    started = time.monotonic()
    message = refused(project, "check", "--dry-run")
    assert time.monotonic() - started < 10  # it took 67 s and ended in a MemoryError
    # line 13 is l5: a million strings and the lists that hold them, the first anchor over the limit
    assert message == ("YAML aliases expand the config past the limit of 1000000 values (at line 13): each use "
                       "of an alias repeats all that its anchor holds")


def test_an_anchor_used_inside_itself_is_refused(project):
    project.config_path.write_text("models:\n" + MODEL + "    estimator: sklearn.tree.DecisionTreeClassifier\n"
                                   "    params:\n      class_weight: &w {0: *w}\n")
    assert refused(project) == ("the YAML anchor at line 8 is used inside itself; a config cannot hold a recursive "
                                "structure")


def test_a_config_over_one_mib_is_refused_and_one_of_exactly_one_mib_is_read(project):
    text = project.config_path.read_text()
    project.config_path.write_text(text + "#" * (10 * 2**20 - len(text) - 1) + "\n")
    assert refused(project) == ("the config file is larger than 1 MiB (10485760 bytes), the limit for a "
                                "config")
    project.config_path.write_text(text + "#" * (2**20 - len(text) - 1) + "\n")
    assert project.config_path.stat().st_size == 2**20
    result = project.run("config")
    assert result.returncode == 0 and "  iris:\n" in result.stdout, result.stderr


def test_a_config_with_a_few_anchors_still_works(project):
    project.config_path.write_text(f"""base_dir: ..
mlflow: {{enabled: false}}
defaults: &policy {{check_interval: 0, min_data_size: 50}}
models:
  iris:
    data_path: data/raw/iris.csv
    target: Species
    task: classification
    features: &measures [SepalLengthCm, SepalWidthCm, PetalLengthCm, PetalWidthCm]
    estimator: sklearn.tree.DecisionTreeClassifier
    params: &tree {{random_state: 0, max_depth: 3}}
  iris_shallow:
    <<: *policy
    data_path: data/raw/iris.csv
    target: Species
    task: classification
    features: *measures
    estimator: sklearn.tree.DecisionTreeClassifier
    params: {{<<: *tree, max_depth: 1}}
""")
    result = project.run("config")
    assert result.returncode == 0, result.stderr
    models = yaml.safe_load(result.stdout)["models"]
    assert models["iris"]["params"] == {"random_state": 0, "max_depth": 3}
    assert models["iris_shallow"]["params"] == {"random_state": 0, "max_depth": 1}
    assert models["iris"]["features"] == models["iris_shallow"]["features"] == [
        "SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]
    assert models["iris_shallow"]["min_data_size"] == 50


def write_model(project, name):
    project.config_path.write_text("models:\n" + MODEL.replace("iris", name)
                                   + "    estimator: sklearn.tree.DecisionTreeClassifier\n")


@pytest.mark.parametrize("written, kind", [("123", "a number"), ("true", "a boolean"), ("on", "a boolean"),
                                           ("1.5", "a number"), ("null", "null (no value)"),
                                           ("2024-01-01", "a date")])
def test_a_model_name_yaml_reads_as_another_type_says_so_and_how_to_quote_it(project, written, kind):
    write_model(project, written)
    result = project.cli("config")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {project.config_path}: models.{written}: YAML read the key {written} as "
                             f"{kind}; quote it to make it a model name: '{written}':\n")
    write_model(project, f"'{written}'")
    quoted = project.cli("config")
    assert quoted.exit_code == 0 and f"\n  '{written}':\n" in quoted.stdout, quoted.stderr


def test_the_documented_model_name_errors_through_the_installed_command(project):
    write_model(project, "123")
    assert refused(project) == "models.123: YAML read the key 123 as a number; quote it to make it a model name: '123':"
    write_model(project, "true")
    assert refused(project) == ("models.true: YAML read the key true as a boolean; quote it to make it a model "
                                "name: 'true':")
    write_model(project, "a" * 300)
    assert refused(project) == ("models.aaaaaaaaaaaaaaaaaaaa...: a model name has at most 100 characters; this "
                                "one has 300")
    write_model(project, "a" * 100)
    assert project.run("config").returncode == 0
    write_model(project, "-" + "a" * 300)  # what is wrong besides its length comes first
    assert refused(project, documented=False) == ("models.-aaaaaaaaaaaaaaaaaaa...: model names use letters, digits, "
                                                  "'.', '_' and '-' and start with a letter or digit")


def template_example():
    """The config of docs/configuration.md's section on templates."""
    section = DOC[DOC.index("## Many similar models: templates"):]
    block = section[section.index("```yaml\n") + len("```yaml\n"):]
    return block[:block.index("```\n")]


def test_the_documented_template_validates_and_each_model_gets_its_keys(project):
    text = template_example()
    assert text.startswith("base_dir: /srv/retrainctl\n\nx-route: &route ")
    project.config_path.write_text(text.replace("/srv/retrainctl", str(project.root)))
    result = project.cli("config", "--model", "route_31")
    assert result.exit_code == 0, result.stderr
    shown = result.stdout.replace(str(project.root), "/srv/retrainctl")
    documented = DOC[DOC.index("    $ retrainctl config --model route_31 | head -n 15\n"):].split("\n\n")[0].split("\n")[1:]
    assert shown.startswith("\n".join(line[4:] for line in documented) + "\n")
    full = project.cli("config")
    assert full.exit_code == 0, full.stderr
    models = yaml.safe_load(full.stdout)["models"]
    assert list(models) == ["route_12", "route_14", "route_31"]
    for name, model in models.items():
        assert model["data_path"] == str(project.root / "data" / "routes" / f"{name[6:]}.csv")
        assert (model["target"], model["task"], model["max_model_age_hours"]) == ("minutes_late", "regression", 168)
        assert model["features"] == ["hour", "weekday", "temperature", "rain_mm"]
    assert models["route_12"]["params"] == models["route_14"]["params"] == {"max_iter": 200, "learning_rate": 0.1}
    assert models["route_31"]["params"] == {"max_iter": 400, "learning_rate": 0.1}
    # `config` prints the effective config: no template, and no YAML anchors for the values models share
    assert "x-route" not in full.stdout and "&id" not in full.stdout and "*id" not in full.stdout


def test_only_top_level_keys_starting_with_x_are_left_out_of_validation(project):
    text = template_example().replace("/srv/retrainctl", str(project.root))
    project.config_path.write_text(text + "x-notes: [any, value]\nx-: 3\n")
    assert project.run("config").returncode == 0
    project.config_path.write_text(text.replace("x-route:", "route:"))
    assert refused(project) == "route: unknown key 'route'"
    project.config_path.write_text(text.replace("x-route:", "x_route:"))
    assert refused(project, documented=False) == "x_route: unknown key 'x_route'"
    project.config_path.write_text(text.replace("    data_path: data/routes/12.csv\n",
                                                "    data_path: data/routes/12.csv\n    x-owner: ops\n"))
    assert refused(project, documented=False) == "models.route_12.x-owner: unknown key 'x-owner'"


def test_a_holdout_under_10_rows_fails_the_training_as_a_data_error_saying_what_would_do(project):
    project.config["models"].pop("housing")
    project.set_model("iris", test_size=0.01)
    train = project.cli("train", "iris")
    assert train.exit_code == 1
    line = (f"iris: failed: {project.data('iris')}: test_size 0.01 of 150 labelled rows holds out 1, fewer than "
            f"the 10 holdout rows the promotion gate needs: raise test_size to 0.07, or have at least 1000 labelled "
            f"rows\n")
    assert train.stdout == line
    documented = (REPO / "docs" / "triggers-and-quality.md").read_text()
    assert "    " + line.replace(str(project.root), "/srv/retrainctl") in documented
    check = project.cli("check")
    assert check.exit_code == 1 and "Traceback" not in check.stderr
    assert [(e["trigger_type"], e["status"], e["error_type"]) for e in project.history()] == [
        ("manual", "failure", "data_error"), ("initial", "failure", "data_error")]
    assert project.current_version("iris") is None
    project.set_model("iris", test_size=0.07)  # 10.5 rows
    trained = project.cli("train", "iris")
    assert trained.exit_code == 0 and trained.stdout.startswith("iris: promoted v1"), trained.stderr
    meta = json.loads((project.model_dir / "iris" / "v1" / "metadata.json").read_text())
    assert meta["holdout_rows"] >= 10


def test_a_holdout_too_small_on_few_rows_says_to_add_rows(project):
    """Where no test_size up to a half would do, the message asks for rows only."""
    project.config["models"].pop("housing")
    iris = project.data("iris")
    iris.write_text("".join(iris.read_text().splitlines(keepends=True)[::8]))  # the header and 18 rows, 3 classes
    project.set_model("iris", min_data_size=10)
    train = project.cli("train", "iris")
    assert train.exit_code == 1
    assert train.stdout == (f"iris: failed: {iris}: test_size 0.2 of 18 labelled rows holds out 3, fewer than the 10 "
                            f"holdout rows the promotion gate needs: have at least 50 labelled rows\n")


def test_a_test_size_of_1_or_more_is_refused_as_a_row_count(project):
    project.set_model("iris", test_size=5)
    result = project.cli("config")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {project.config_path}: models.iris.test_size: must be a share of the rows between "
                             f"0 and 1 (exclusive), e.g. 0.2; not a row count, got 5\n")


def test_a_random_holdout_of_few_rows_has_at_least_10():
    """50 rows at test_size 0.2: the hash draw alone holds out fewer than 10 rows for about two
    data sets in five. The rows of the next lowest hashes make up the floor, and as the file grows
    a row only ever leaves the holdout, so a champion is never scored on rows it was trained on."""
    import numpy as np
    import pandas as pd

    from retrainctl.config.records import CsvOptions, TrainingSpec
    from retrainctl.fit.task import holdout_split

    spec = TrainingSpec(name="m", target="y", task="regression", metric="r2", features=None, estimator="e",
                        trainer=None, params={}, test_size=0.2, random_state=0, csv=CsvOptions(), feature_types={})
    sizes = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
        y = pd.Series(rng.normal(size=60))
        small = holdout_split(spec, X[:50], y[:50], "d.csv")[1]
        grown = holdout_split(spec, X, y, "d.csv")[1]
        sizes.append(len(small))
        assert set(grown.index) & set(range(50)) <= set(small.index)
    assert min(sizes) == 10 and sizes.count(10) > 3  # the floor was needed, and held
