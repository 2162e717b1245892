"""Shell completion: click's, driven through the installed command with the variables its bash
script sets; model names come from the config (--config, else the usual lookup), and a config
that cannot be read gives no completions and no error. `make install` installs the bash script."""
import os
import subprocess

import pytest

from conftest import BIN, REPO, RETRAINCTL, copy_install

BOTH = "plain,iris\nplain,housing\n"


def complete(line, cwd="/", env=None):
    """What the installed command offers for the last word of `line` (a trailing space: a new,
    empty word), exactly as bash's script asks for it."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    full_env = {k: v for k, v in os.environ.items() if k != "RETRAINCTL_CONFIG"}
    full_env.update(_RETRAINCTL_COMPLETE="bash_complete", COMP_WORDS=line, COMP_CWORD=str(cword), **(env or {}))
    done = subprocess.run([RETRAINCTL], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    return done.stdout


@pytest.mark.parametrize("command", ["train", "trigger", "rollback", "check", "status", "pause", "resume", "report",
                                     "history --model", "config --model", "check --dry-run"])
def test_every_model_parameter_completes_the_configured_names(project, command):
    assert complete(f"retrainctl --config {project.config_path} {command} ") == BOTH


def test_completion_filters_by_prefix_and_leaves_out_named_models(project):
    config = f"retrainctl --config {project.config_path}"
    assert complete(f"{config} train h") == "plain,housing\n"
    assert complete(f"{config} rollback x") == "\n"
    assert complete(f"{config} check iris ") == "plain,housing\n"
    assert complete(f"{config} status housing iris ") == "\n"
    assert complete(f"{config} pause h") == "plain,housing\n"
    # a single MODEL is taken: the next word is not another model
    assert complete(f"{config} train iris ") == "\n"
    assert complete(f"{config} st") == "plain,status\n"


def test_completion_finds_the_config_as_the_command_does(project):
    """No --config: $RETRAINCTL_CONFIG, else ./etc/retrainctl.yaml."""
    assert complete("retrainctl train ", cwd=project.root) == BOTH
    assert complete("retrainctl train ", env={"RETRAINCTL_CONFIG": str(project.config_path)}) == BOTH
    project.config["models"]["orders"] = project.config["models"].pop("housing")
    project.write_config()
    assert complete("retrainctl train ", cwd=project.root) == "plain,iris\nplain,orders\n"


@pytest.mark.parametrize("config", [
    "models: [unclosed\n",                      # not YAML
    "models:\n  iris: {data_path: x}\n",        # invalid: no target, ...
    "models: &a [*a]\n",                        # an alias loop
    "",                                         # empty
])
def test_a_broken_config_gives_no_completions_and_no_error(project, config):
    project.config_path.write_text(config)
    assert complete(f"retrainctl --config {project.config_path} train ") == "\n"
    assert complete("retrainctl train ", cwd=project.root) == "\n"


def test_a_missing_or_unreadable_config_gives_no_completions(project, tmp_path):
    assert complete(f"retrainctl --config {tmp_path / 'missing.yaml'} train ") == "\n"
    assert complete(f"retrainctl --config {tmp_path} train ") == "\n"  # a directory


def bash_completions(script, line, path):
    """COMPREPLY after bash runs the installed completion function on `line`."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    program = (f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
               f"_retrainctl_completion retrainctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    env = {k: v for k, v in os.environ.items() if k != "RETRAINCTL_CONFIG"}
    done = subprocess.run(["bash", "-c", program], env=dict(env, PATH=f"{path}:{env['PATH']}"), cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    return done.stdout.splitlines()


def test_make_install_installs_the_bash_completion(installed, project, tmp_path):
    script = installed / "etc/bash_completion.d/retrainctl"  # a staged install: the system-wide folder
    assert "complete -o nosort -F _retrainctl_completion retrainctl" in script.read_text()
    assert bash_completions(script, f"retrainctl --config {project.config_path} rollback ", BIN) == ["iris", "housing"]
    assert bash_completions(script, f"retrainctl --config {project.config_path} history --model h", BIN) == ["housing"]

    root = tmp_path / "root"
    copy_install(installed, root)
    done = subprocess.run(["make", "-C", str(REPO), "uninstall", f"DESTDIR={root}"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (root / "etc/bash_completion.d/retrainctl").exists()
