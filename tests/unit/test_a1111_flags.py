"""Issue 18: A1111's launch flags, as webui-user.sh/.bat pass them (also through COMMANDLINE_ARGS), are accepted;
those with a meaning here change our settings, the others are named in one start-up line, --disable-safe-unpickle is
refused and a mistyped flag gets a suggestion."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from webui import cli
from webui.flags import bind_host, build_parser, cmd_flags, exposure, ignored_notice, parse_command_line, \
    settings_from_args
from webui.server import credentials_from_args, security_warnings

ROOT = Path(__file__).resolve().parents[2]
WEBUI_USER = ("--xformers --api --listen --port 7861 --gradio-auth u:p --no-half-vae --opt-sdp-attention "
              "--skip-torch-cuda-test --theme dark --enable-insecure-extension-access")


def parse(line: str, tmp_path: Path, environ: dict | None = None):
    return parse_command_line(["--data-dir", str(tmp_path), *line.split()], environ or {})


def test_a_webui_user_command_line_maps_to_our_flags(tmp_path):
    args = parse(WEBUI_USER, tmp_path)
    settings, _ = settings_from_args(args)
    assert (args.api, args.listen, args.port, args.theme, args.command) == (True, True, 7861, "dark", None)
    assert args.enable_insecure_extension_access and settings.xformers and settings.lock_folders
    assert credentials_from_args(args) == ([("u", "p")], [("u", "p")])  # --gradio-auth is --auth
    assert (bind_host(args), exposure(args)) == ("0.0.0.0", ["--listen"])
    assert ignored_notice(args) == "A1111 flags with no effect here: --skip-torch-cuda-test, --no-half-vae"


@pytest.mark.parametrize("line, device, precision", [
    ("--precision full", "auto", "fp32"), ("--precision autocast", "auto", "auto"), ("--no-half", "auto", "fp32"),
    ("--precision fp16", "auto", "fp16"), ("--device-id 1", "cuda:1", "auto"), ("--device cpu --device-id 1", "cpu", "auto"),
    ("--use-cpu all --precision full --no-half --skip-torch-cuda-test", "cpu", "fp32"), ("--use-cpu sd", "cpu", "auto"),
])
def test_device_and_precision_flags(tmp_path, line, device, precision):
    settings, _ = settings_from_args(parse(line, tmp_path))
    assert (settings.device, settings.precision) == (device, precision)


def test_folder_flags_of_a1111_reach_our_folders(tmp_path):
    (tmp_path / "auth.txt").write_text("ann:pw1\nbob:pw2\n")
    line = (f"--ckpt-dir /m/sd --lora-dir /m/lora --lyco-dir-backcompat /m/lyco --embeddings-dir /m/emb "
            f"--esrgan-models-path /m/esr --realesrgan-models-path /m/resr --swinir-models-path /m/swin "
            f"--dat-models-path /m/dat --hat-models-path /m/hat --gfpgan-models-path /m/gfp "
            f"--codeformer-models-path /m/cf --vae-path /m/vae/kl-f8.safetensors --vae-dir /m/vae2 "
            f"--gradio-auth-path {tmp_path / 'auth.txt'} --ckpt /m/sd/model.safetensors --force-enable-xformers")
    args = parse(line, tmp_path)
    s, _ = settings_from_args(args)
    paths = lambda *names: [Path(f"/m/{n}") for n in names]  # noqa: E731
    assert s.ckpt_dirs == paths("sd") and s.lora_dirs == paths("lora", "lyco") and s.embeddings_dir == Path("/m/emb")
    assert s.upscaler_dirs == paths("esr", "resr", "swin", "dat", "hat")
    assert (s.gfpgan_dirs, s.codeformer_dirs) == (paths("gfp"), paths("cf"))
    assert s.vae_dirs == paths("vae2", "vae")  # --vae-path's folder is searched, so the file can be chosen
    assert (s.ckpt, s.xformers) == ("/m/sd/model.safetensors", True)
    assert credentials_from_args(args)[0] == [("ann", "pw1"), ("bob", "pw2")]  # --gradio-auth-path is --auth-file


@pytest.mark.parametrize("host, exposed", [("0.0.0.0", True), ("192.168.1.5", True), ("myhost.lan", True),
                                           ("127.0.0.1", False), ("localhost", False), ("::1", False)])
def test_server_name_binds_there_and_counts_as_listen_unless_loopback(tmp_path, host, exposed):
    args = parse(f"--server-name {host}", tmp_path)
    settings, _ = settings_from_args(args)
    assert bind_host(args) == host and settings.lock_folders is exposed
    warnings = security_warnings(args, [], [])
    assert (len(warnings) == 1 and f"--server-name {host} without --auth" in warnings[0]) if exposed else not warnings


def test_partial_setting_freezes_freeze_everything(tmp_path):
    for line in ("--freeze-settings", "--freeze-settings-in-sections saving-images",
                 "--freeze-specific-settings samples_save,samples_format"):
        assert settings_from_args(parse(line, tmp_path))[0].freeze_settings is True
    assert settings_from_args(parse("", tmp_path))[0].freeze_settings is False


def test_commandline_args_come_first_and_the_real_command_line_wins(tmp_path):
    env = {"COMMANDLINE_ARGS": "--port 7861 --api --ckpt-dir '/m/my ckpts' --theme light"}
    args = parse_command_line(["--data-dir", str(tmp_path), "--port", "9000", "--ckpt-dir", "/m/b"], env)
    assert (args.port, args.api, args.theme) == (9000, True, "light")
    assert args.ckpt_dir == [Path("/m/my ckpts"), Path("/m/b")]  # quoted as the shell would
    args = parse_command_line(["generate", "--prompt", "x", "--precision", "fp16"],
                              {"COMMANDLINE_ARGS": "--xformers --precision full --listen"})
    assert (args.command, args.xformers, args.listen, args.precision) == ("generate", True, True, "fp16")


def test_commandline_args_with_bad_quoting_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as info:
        parse_command_line([], {"COMMANDLINE_ARGS": "--ckpt-dir 'unclosed"})
    assert info.value.code == 2 and "COMMANDLINE_ARGS: No closing quotation" in capsys.readouterr().err


def test_flags_with_no_effect_are_named_in_one_start_up_line(tmp_path, monkeypatch, caplog):
    seen = []
    monkeypatch.setattr(cli, "run_generate", lambda args: seen.append(args) or 0)
    env = {"COMMANDLINE_ARGS": "--autolaunch --ngrok-region eu --opt-sdp-attention --styles-file a.csv"}
    argv = ["--styles-file", "b.csv", "--use-cpu", "interrogate", "--no-download-sd-model", "--loglevel", "DEBUG",
            "generate", "--prompt", "x"]
    with caplog.at_level(logging.WARNING):
        assert cli.main(argv, env) == 0
    lines = [r.getMessage() for r in caplog.records if "no effect" in r.getMessage()]
    assert lines == ["A1111 flags with no effect here: --autolaunch, --no-download-sd-model, --ngrok-region, "
                     "--loglevel, --styles-file, --use-cpu"]
    args = seen[0]
    assert (args.command, args.ngrok_region, args.styles_file, args.loglevel) == ("generate", "eu", ["a.csv", "b.csv"],
                                                                                  "DEBUG")


def test_no_notice_when_every_flag_means_something(tmp_path):
    assert ignored_notice(parse("--api --listen --opt-sdp-no-mem-attention --xformers --medvram", tmp_path)) is None


@pytest.mark.parametrize("argv", [["--disable-safe-unpickle"], ["--api", "--disable-safe-unpickle", "--listen"]])
def test_disable_safe_unpickle_is_refused_with_the_reason(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parse_command_line(argv, {})
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "--disable-safe-unpickle is refused" in err and "weights-only loader" in err and ".safetensors" in err


@pytest.mark.parametrize("argv, typo, suggestion", [
    (["--lsiten"], "--lsiten", "--listen"), (["--gradio-auht", "u:p"], "--gradio-auht", "--gradio-auth"),
    (["--api", "--prot", "7861"], "--prot", "--port"), (["--no-half-vea"], "--no-half-vea", "--no-half-vae"),
    (["generate", "--prompt", "x", "--stesp", "3"], "--stesp", "--steps"),
])
def test_a_mistyped_flag_gets_a_close_match(argv, typo, suggestion, capsys):
    with pytest.raises(SystemExit) as info:
        parse_command_line(argv, {})
    err = capsys.readouterr().err
    assert info.value.code == 2 and "invalid choice" not in err
    assert f"unrecognized arguments: {typo} (did you mean {suggestion}?)" in err


def test_a_flag_of_generate_before_it_says_where_it_belongs(capsys):
    with pytest.raises(SystemExit):
        parse_command_line(["--prompt", "x", "generate"], {})
    assert "unrecognized arguments: --prompt (--prompt belongs after `generate`)" in capsys.readouterr().err


def test_a1111_values_are_never_taken_for_the_subcommand():
    args = build_parser().parse_args(["--ngrok-region", "us", "--gradio-auth", "u:p", "--gradio-img2img-tool",
                                      "color-sketch", "--listen"])
    assert (args.command, args.auth, args.ngrok_region, args.listen) == (None, "u:p", "us", True)


def test_cmd_flags_report_a1111_names_and_never_log_ins(tmp_path):
    flags = cmd_flags(parse(f"{WEBUI_USER} --ngrok-region eu --server-name 0.0.0.0 --api-auth a:b", tmp_path))
    assert (flags["listen"], flags["port"], flags["server_name"], flags["theme"]) == (True, 7861, "0.0.0.0", "dark")
    assert (flags["no_half_vae"], flags["skip_torch_cuda_test"], flags["opt_sdp_attention"]) == (True, True, True)
    assert (flags["autolaunch"], flags["ngrok_region"], flags["styles_file"]) == (False, "eu", [])
    assert flags["gradio_auth"] is None and flags["api_auth"] is None and flags["gradio_auth_path"] is None
    assert "u:p" not in repr(flags) and "a:b" not in repr(flags)


def test_app_py_exits_2_for_refused_and_mistyped_flags():
    """The real entry point: argparse answers before anything heavy is imported."""
    env = {**os.environ, "COMMANDLINE_ARGS": "--api --lsiten"}
    p = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "did you mean --listen?" in p.stderr
    env["COMMANDLINE_ARGS"] = "--api --disable-safe-unpickle"
    p = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--disable-safe-unpickle is refused" in p.stderr


def test_webui_user_bat_paths_keep_their_backslashes(monkeypatch):
    from webui import flags

    monkeypatch.setattr(flags.os, "name", "nt")
    assert flags.split_args(r'--ckpt-dir "C:\My Models\sd" --api --lora-dir D:\lora') == [
        "--ckpt-dir", r"C:\My Models\sd", "--api", "--lora-dir", r"D:\lora"]
