"""serve-ray's flags, the YAML's args and the deployment options they make: plain Python, no ray needed."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from webui.flags import build_parser
from webui.serving.ray_config import (
    ConfigError,
    RayServeConfig,
    argv_from_yaml_args,
    parse_autoscale,
)

YAML = Path(__file__).resolve().parents[2] / "webui" / "serving" / "serve_config.yaml"


def config(*argv: str) -> RayServeConfig:
    return RayServeConfig.from_args(build_parser().parse_args(list(argv)))


def test_replicas_gpus_and_the_folder_and_auth_flags_on_either_side():
    args = build_parser().parse_args(["--api-auth", "a:b", "--data-dir", "/shared/ls", "serve-ray", "--replicas", "3",
                                      "--gpus-per-replica", "1", "--outdir", "/shared/out", "--port", "8000"])
    assert (args.command, args.api_auth, args.data_dir, args.outdir, args.port) == \
        ("serve-ray", "a:b", Path("/shared/ls"), Path("/shared/out"), 8000)
    options = RayServeConfig.from_args(args).generator_options()
    assert options["num_replicas"] == 3 and options["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert "autoscaling_config" not in options


def test_autoscale_scales_on_ongoing_requests():
    options = config("serve-ray", "--autoscale", "0-4", "--max-ongoing-requests", "3").generator_options()
    assert "num_replicas" not in options and options["max_ongoing_requests"] == 3
    scaling = options["autoscaling_config"]
    assert (scaling["min_replicas"], scaling["max_replicas"], scaling["initial_replicas"]) == (0, 4, 1)
    assert scaling["target_ongoing_requests"] == 2.0


def test_checkpoint_cache_is_the_models_each_replica_keeps():
    assert config("--checkpoint-cache", "2", "serve-ray").models_per_replica == 2
    assert config("serve-ray").models_per_replica == 1


@pytest.mark.parametrize("text", ["4", "4-1", "a-b", "-1-2", "0-0"])
def test_bad_autoscale_bounds_are_refused_by_name(text):
    with pytest.raises(ConfigError, match="--autoscale"):
        parse_autoscale(text)


def test_replicas_and_autoscale_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve-ray", "--replicas", "2", "--autoscale", "1-3"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_zero_replicas_is_refused():
    with pytest.raises(ConfigError, match="--replicas"):
        config("serve-ray", "--replicas", "0")


def test_the_documented_yaml_builds_a_valid_command_line():
    doc = yaml.safe_load(YAML.read_text(encoding="utf-8"))
    app = doc["applications"][0]
    assert app["import_path"] == "webui.serving.ray_app:build_app" and app["route_prefix"] == "/"
    argv = argv_from_yaml_args(app["args"])
    args = build_parser().parse_args(argv)
    assert args.command == "serve-ray" and args.data_dir == Path(app["args"]["flags"].split()[1])
    assert RayServeConfig.from_args(args).autoscale == parse_autoscale(app["args"]["autoscale"])


def test_unknown_yaml_args_are_named():
    with pytest.raises(ConfigError, match="replica_count"):
        argv_from_yaml_args({"replica_count": 2})
