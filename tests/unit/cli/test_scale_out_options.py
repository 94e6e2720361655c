"""The scale-out options: --executor, --ray-address, --replicas, repeated --base-url.

What they must not break: a local run never imports Ray; single-URL runs and runs made
before these options existed resume as before."""

import subprocess
import sys

import pytest
from cli_in_process import cli

from selfinstruct.cli import build_parser
from selfinstruct.cli.options import config_from_args
from selfinstruct.run.config import RunConfig, differences


def parse(*argv):
    return config_from_args(build_parser().parse_args(["run", "--out", "x", *argv]))


def test_base_url_may_be_repeated_or_comma_separated():
    assert parse("--base-url", "http://a/v1").base_url == "http://a/v1"
    both = parse("--base-url", "http://a/v1", "--base-url", "http://b/v1").base_url
    assert both == "http://a/v1,http://b/v1"
    assert parse("--base-url", "http://a/v1,http://b/v1").base_url == both


def test_executor_options_reach_the_config():
    config = parse("--executor", "ray", "--ray-address", "auto", "--replicas", "3")
    assert (config.executor, config.ray_address, config.replicas) == ("ray", "auto", 3)
    assert parse().executor == "local"


@pytest.mark.parametrize("args,message", [
    (["--executor", "spark"], "--executor: must be one of local, ray, got 'spark'"),
    (["--replicas", "-1"], "--replicas: must be at least 0, got -1"),
    (["--base-url", "http://a/v1,"], "--base-url: empty URL in 'http://a/v1,'"),
])
def test_bad_scale_out_options_exit_2_with_one_line(tmp_path, capsys, monkeypatch, args,
                                                    message):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", *args)
    assert code == 2
    assert err.strip() == f"selfinstruct: error: {message}"
    assert not (tmp_path / "r").exists()


def test_where_requests_run_may_change_on_resume_and_old_manifests_still_match():
    before = RunConfig().as_dict()
    for key in ("executor", "ray_address", "replicas"):  # a manifest from an older version
        del before[key]
    after = RunConfig(executor="ray", ray_address="auto", replicas=4).as_dict()
    assert differences(before, after) == []
    assert differences(RunConfig(base_url="http://a/v1").as_dict(),
                       RunConfig(base_url="http://a/v1,http://b/v1").as_dict())


def test_executor_ray_without_ray_installed_says_how_to_install_it(tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "selfinstruct.backends.pool.ray_actors", raising=False)
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--executor", "ray",
                       "--num-instructions", "1", "--quiet")
    assert code == 2, err
    assert err.strip() == ("selfinstruct: error: --executor ray needs Ray, which is "
                           "not installed: pip install 'selfinstruct[ray]'")


@pytest.mark.slow
def test_a_local_run_never_imports_ray(tmp_path):
    """Everything a local run loads, the embedded model included, without Ray."""
    code = (
        "import sys\n"
        "from selfinstruct.cli import build_parser\n"
        "from selfinstruct import RunConfig, open_context, run_pipeline\n"
        "import selfinstruct.stages.bootstrap, selfinstruct.stages.instances\n"
        "import selfinstruct.backends.pool.endpoints\n"
        "build_parser()\n"
        "ctx = open_context(sys.argv[1], RunConfig(num_instructions=1))\n"
        "ctx.backend\n"
        "ctx.close()\n"
        "print('ray' in sys.modules)\n"
    )
    # a fresh interpreter: whether Ray is imported is a question about one process's imports
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r")],
                         capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "False"
