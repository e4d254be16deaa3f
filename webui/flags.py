"""Command-line flags (A1111 names) and what they mean as Settings; shared by `app.py generate` (webui.cli) and the
web server (webui.server), so neither has to import the other.

Every A1111 launch flag is accepted, so a webui-user.sh/.bat (COMMANDLINE_ARGS) works unchanged: one with a meaning
here is another name of ours (`--gradio-auth` is `--auth`), the others are accepted and named together in one
start-up line (`ignored_notice`), and `--disable-safe-unpickle` is refused.
"""
from __future__ import annotations

import argparse
import difflib
import ipaddress
import os
import shlex
import sys
from pathlib import Path

from webui.settings import FLAG_ORIGIN, ROOT, Settings, load_user_settings
from webui.train_flags import add_train_parsers

# A1111 flags with no meaning here, by how many values each takes (0: a switch, 1: one value, "append": one value,
# repeatable). --no-half-vae: an fp16 VAE that makes NaNs is switched to fp32 by itself; keeping it in fp32 from the
# start would feed it fp16 images in diffusers' img2img encode.
NO_EFFECT: dict[str, int | str] = {
    **dict.fromkeys((
        "-f", "--update-all-extensions", "--skip-python-version-check", "--skip-torch-cuda-test",
        "--reinstall-xformers", "--reinstall-torch", "--update-check", "--no-tests", "--skip-install", "--log-startup",
        "--skip-prepare-environment", "--dump-sysinfo", "--do-not-download-clip", "--no-half-vae",
        "--no-progressbar-hiding", "--allow-code", "--medvram-sdxl", "--lowram", "--always-batch-cond-uncond",
        "--unload-gfpgan", "--upcast-sampling", "--deepdanbooru", "--opt-split-attention", "--opt-sub-quad-attention",
        "--opt-split-attention-invokeai", "--opt-split-attention-v1", "--disable-opt-split-attention",
        "--disable-nan-check", "--use-ipex", "--disable-model-loading-ram-optimization", "--show-negative-prompt",
        "--gradio-debug", "--opt-channelslast", "--autolaunch", "--use-textbox-seed", "--disable-console-progressbars",
        "--enable-console-prompts", "--ui-debug-mode", "--administrator", "--disable-tls-verify", "--gradio-queue",
        "--no-gradio-queue", "--skip-version-check", "--no-hashing", "--no-download-sd-model", "--add-stop-route",
        "--disable-all-extensions", "--disable-extra-extensions", "--skip-load-model-at-start",
        "--unix-filenames-sanitization", "--no-prompt-history", "--test-server"), 0),
    **dict.fromkeys((
        "--tests", "--config", "--gfpgan-dir", "--gfpgan-model", "--max-batch-count",
        "--textual-inversion-templates-dir", "--hypernetwork-dir", "--localizations-dir", "--sub-quad-q-chunk-size",
        "--sub-quad-kv-chunk-size", "--sub-quad-chunk-threshold", "--ngrok", "--ngrok-region", "--ngrok-options",
        "--bsrgan-models-path", "--scunet-models-path", "--ldsr-models-path", "--clip-models-path",
        "--ui-config-file", "--ui-settings-file", "--gradio-img2img-tool", "--gradio-inpaint-tool", "--subpath",
        "--filenames-max-length", "--loglevel"), 1),
    "--gradio-allowed-path": "append", "--styles-file": "append",
}
# A1111 flags that ask for what happens here anyway (PyTorch's SDPA attention is the default): accepted quietly.
ALREADY = ("--opt-sdp-attention", "--opt-sdp-no-mem-attention")
UNPICKLE_REFUSAL = ("this app never unpickles code: .ckpt/.pt files are read only with torch's weights-only loader, "
                    "which has no unsafe mode. Convert the file to .safetensors instead")
_PRECISION = {"full": "fp32", "autocast": "auto"}  # A1111's --precision values


class FlagParser(argparse.ArgumentParser):
    """argparse that names a mistyped flag with its closest match before parsing, so the value after an unknown
    flag is never taken for the subcommand ("invalid choice: 'u:p' (choose from 'generate')"). Each parser checks
    the flags up to its subcommand; the subcommand's parser checks the rest."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        known, subcommands = _options(self)
        for token in args:
            if token == "--" or token in subcommands:
                break
            name = token.split("=", 1)[0]
            if name.startswith("--") and not any(k.startswith(name) for k in known):  # prefixes: argparse's
                self.error(f"unrecognized arguments: {name}{_hint(name, known, subcommands)}")
        return super().parse_known_args(args, namespace)


def _options(parser: argparse.ArgumentParser) -> tuple[list[str], dict]:
    """The parser's flags, and its subcommands' parsers by name."""
    known, subcommands = [], {}
    for action in parser._actions:
        known += action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            subcommands.update(action.choices)
    return known, subcommands


def _hint(name: str, known: list[str], subcommands: dict) -> str:
    for command, sub in subcommands.items():
        if name in _options(sub)[0]:
            return f" ({name} belongs after `{command}`)"
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


class _Refused(argparse.Action):
    """A flag that stops the app with exit status 2 and the reason."""

    def __init__(self, option_strings, dest, reason: str, **kw):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)
        self.reason = reason

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(2, f"{parser.prog}: error: {option_string} is refused: {self.reason}\n")


def _at_least_one(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (the loaded checkpoint counts), got {n}")
    return n


def _precision(text: str) -> str:
    return _PRECISION.get(text, text)


def add_common_flags(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """Folder, device and checkpoint flags; ``defaults=False`` leaves unset flags out of the result."""
    d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
    g = p.add_argument_group("folders")
    g.add_argument("--data-dir", type=Path, default=d(ROOT), help="base folder for models/, embeddings/, outputs/, cache/")
    g.add_argument("--models-dir", default=d(None), type=Path, help="folder holding Stable-diffusion/, Lora/, VAE/, wildcards/")
    g.add_argument("--ckpt-dir", type=Path, action="append", default=d([]), help="extra checkpoint folder (repeatable)")
    g.add_argument("--vae-dir", type=Path, action="append", default=d([]), help="extra VAE folder")
    g.add_argument("--vae-path", type=Path, default=d(None), help="VAE file to use from the start (its folder is "
                   "searched for VAEs too)")
    g.add_argument("--lora-dir", "--lyco-dir-backcompat", type=Path, action="append", default=d([]),
                   help="extra LoRA folder")
    g.add_argument("--upscaler-dir", "--esrgan-models-path", "--realesrgan-models-path", "--swinir-models-path",
                   "--dat-models-path", "--hat-models-path", type=Path, action="append", default=d([]),
                   help="extra folder of upscaler models (.pth, .safetensors)")
    g.add_argument("--gfpgan-models-path", type=Path, action="append", default=d([]),
                   help="extra folder of GFPGAN face restoration models")
    g.add_argument("--codeformer-models-path", type=Path, action="append", default=d([]),
                   help="extra folder of CodeFormer face restoration models")
    g.add_argument("--controlnet-dir", type=Path, action="append", default=d([]),
                   help="extra ControlNet model folder (besides models/ControlNet)")
    g.add_argument("--controlnet-annotator-models-path", type=Path, action="append", default=d([]),
                   help="extra folder of ControlNet preprocessor weights (<folder>/<kind>/<file>)")
    g.add_argument("--embeddings-dir", default=d(None), type=Path, help="textual-inversion embeddings folder")
    g.add_argument("--outdir", default=d(None), type=Path, help="outputs folder (default: outputs/)")
    g = p.add_argument_group("device and memory")
    g.add_argument("--device", default=d("auto"), help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    g.add_argument("--device-id", default=d(None), help="CUDA device number (A1111): --device cuda:N")
    g.add_argument("--use-cpu", nargs="+", type=str.lower, default=d([]), help="A1111: 'all' (or 'sd') = --device cpu")
    g.add_argument("--precision", type=_precision, choices=["auto", "fp16", "fp32"], default=d("auto"),
                   help="auto: fp16 on CUDA, fp32 elsewhere (A1111's full = fp32, autocast = auto)")
    g.add_argument("--no-half", action="store_true", default=d(False), help="same as --precision fp32")
    g.add_argument("--xformers", "--force-enable-xformers", "--xformers-flash-attention", action="store_true",
                   default=d(False), help="use xformers attention when CUDA and xformers really work")
    g.add_argument("--medvram", action="store_true", default=d(False), help="CUDA: keep only the running model part on the GPU")
    g.add_argument("--lowvram", action="store_true", default=d(False), help="CUDA: sequential offload, slowest, least VRAM")
    g.add_argument("--attention-slicing", action="store_true", default=d(False), help="compute attention in slices (less memory)")
    g.add_argument("--compile", action="store_true", default=d(False),
                   help="torch.compile the UNet and VAE decode: slow first image at each new size, faster after")
    g.add_argument("--backend", choices=["pytorch", "openvino"], default=d("pytorch"),
                   help="openvino: run the UNet and VAE decoder with OpenVINO on the CPU "
                        "(pip install -r requirements-openvino.txt)")
    g.add_argument("--openvino-precision", choices=["f32", "bf16"], default=d("f32"),
                   help="OpenVINO's compute precision: f32 (as PyTorch, the default) or bf16 (faster on CPUs "
                        "with bf16, but it can change the image: check it on your model)")
    g = p.add_argument_group("checkpoints")
    g.add_argument("--ckpt", default=d(None), help="checkpoint to load first (title, name or path)")
    g.add_argument("--checkpoint-cache", default=d(None), type=_at_least_one, help="checkpoints kept in RAM (default 1)")


def add_server_flags(p: argparse.ArgumentParser) -> None:
    """Web server flags (A1111 names); used only when no subcommand is given (see webui.server.serve)."""
    g = p.add_argument_group("server")
    g.add_argument("--listen", action="store_true", help="serve on all network interfaces (0.0.0.0), not only 127.0.0.1")
    g.add_argument("--server-name", help="address to serve on; other than localhost it counts as --listen")
    g.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    g.add_argument("--share", action="store_true", help="also make a public Gradio share link (needs the internet)")
    g.add_argument("--auth", "--gradio-auth", help="log-in for the UI (and the API): user:pass[,user2:pass2]")
    g.add_argument("--auth-file", "--gradio-auth-path", type=Path,
                   help="file of user:pass entries (one per line or comma separated)")
    g.add_argument("--api", action="store_true", help="also serve the REST API (/sdapi/v1, docs at /docs)")
    g.add_argument("--api-auth", help="HTTP Basic log-in for the API only: user:pass[,user2:pass2]")
    g.add_argument("--api-log", action="store_true", help="log every API request (status, method, path, client)")
    g.add_argument("--api-server-stop", action="store_true",
                   help="serve POST /sdapi/v1/server-stop, server-kill and server-restart")
    g.add_argument("--nowebui", action="store_true", help="serve only the REST API, no web UI")
    g.add_argument("--cors-allow-origins", help="comma-separated origins (http://host:port) whose pages may call "
                   "this server from a browser")
    g.add_argument("--cors-allow-origins-regex", help="origins matching this regular expression may too")
    g.add_argument("--tls-keyfile", type=Path, help="serve HTTPS with this key (with --tls-certfile)")
    g.add_argument("--tls-certfile", type=Path, help="serve HTTPS with this certificate (with --tls-keyfile)")
    g.add_argument("--timeout-keep-alive", type=int, default=5, help="seconds an idle connection stays open")
    g.add_argument("--theme", choices=["light", "dark"], help="open the UI in this colour scheme")
    g.add_argument("--freeze-settings", action="store_true", help="settings cannot be changed from the UI or API")
    for name in ("--freeze-settings-in-sections", "--freeze-specific-settings"):
        g.add_argument(name, metavar="LIST", help="A1111's partial freeze: here it freezes all settings")
    g.add_argument("--hide-ui-dir-config", action="store_true", help="folders cannot be changed from the UI "
                   "(always so with --listen or --share)")
    g.add_argument("--enable-insecure-extension-access", action="store_true",
                   help="allow installing extensions from a URL even when other machines can reach the server")
    g.add_argument("--disable-safe-unpickle", action=_Refused, reason=UNPICKLE_REFUSAL, help="refused")


def add_ignored_flags(p: argparse.ArgumentParser) -> None:
    """A1111's other flags, accepted (with their values) and left out of the result unless given."""
    g = p.add_argument_group("A1111 flags accepted without effect", "named in one line at start")
    kinds = {0: dict(action="store_true"), 1: dict(), "append": dict(action="append")}
    for name, arity in {**NO_EFFECT, **dict.fromkeys(ALREADY, 0)}.items():
        g.add_argument(name, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kinds[arity])


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def ignored_flags(args: argparse.Namespace) -> list[str]:
    """The flags given that have no effect here."""
    names = [name for name in NO_EFFECT if hasattr(args, _dest(name))]
    if getattr(args, "use_cpu", None) and not _cpu_only(args):
        names.append("--use-cpu")
    return names


def ignored_notice(args: argparse.Namespace) -> str | None:
    names = ignored_flags(args)
    return f"A1111 flags with no effect here: {', '.join(names)}" if names else None


def split_args(text: str) -> list[str]:
    """COMMANDLINE_ARGS split as the shell that set it would: a Windows path keeps its backslashes."""
    if os.name != "nt":
        return shlex.split(text)
    return [t[1:-1] if len(t) > 1 and t[0] == t[-1] == '"' else t for t in shlex.split(text, posix=False)]


def parse_command_line(argv: list[str] | None = None, environ=None) -> argparse.Namespace:
    """COMMANDLINE_ARGS (as webui-user.sh/.bat set it) first, then the real command line, whose flags win."""
    parser = build_parser()
    environ = os.environ if environ is None else environ
    try:
        extra = split_args(environ.get("COMMANDLINE_ARGS", ""))
    except ValueError as exc:
        parser.error(f"COMMANDLINE_ARGS: {exc}")
    return parser.parse_args(extra + list(sys.argv[1:] if argv is None else argv))


def _loopback(host: str) -> bool:
    try:
        return host.lower() == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure(args) -> list[str]:
    """The flags that make the server reachable from other machines (empty: this machine only)."""
    out = [name for name in ("--listen", "--share") if getattr(args, _dest(name), False)]
    host = getattr(args, "server_name", None)
    if host and not _loopback(host):
        out.append(f"--server-name {host}")
    return out


def bind_host(args) -> str:
    return args.server_name or ("0.0.0.0" if args.listen else "127.0.0.1")


def _cpu_only(args) -> bool:
    return bool({"all", "sd"} & set(getattr(args, "use_cpu", None) or ()))


def _device(args) -> str:
    if _cpu_only(args):
        return "cpu"
    if getattr(args, "device_id", None) is not None and args.device == "auto":
        return f"cuda:{args.device_id}"
    return args.device


def settings_from_args(args: argparse.Namespace) -> tuple[Settings, str | None]:
    s = Settings(data_dir=args.data_dir)
    s, notice = load_user_settings(s)
    vae_dirs = list(args.vae_dir) + ([Path(args.vae_path).parent] if args.vae_path else [])
    changes = dict(
        models_dir=args.models_dir, ckpt_dirs=list(args.ckpt_dir), vae_dirs=vae_dirs,
        lora_dirs=list(args.lora_dir), upscaler_dirs=list(args.upscaler_dir),
        gfpgan_dirs=list(args.gfpgan_models_path), codeformer_dirs=list(args.codeformer_models_path),
        controlnet_dirs=list(args.controlnet_dir),
        controlnet_annotator_dirs=list(args.controlnet_annotator_models_path), embeddings_dir=args.embeddings_dir, device=_device(args),
        precision="fp32" if args.no_half else args.precision, xformers=args.xformers, medvram=args.medvram,
        lowvram=args.lowvram, attention_slicing=args.attention_slicing, ckpt=args.ckpt,
        compile=args.compile, backend=args.backend, openvino_precision=args.openvino_precision,
    )
    if args.outdir:
        changes["outputs_dir"] = args.outdir
    if args.checkpoint_cache is not None:
        changes["checkpoint_cache_size"] = args.checkpoint_cache
    flag = lambda name: bool(getattr(args, name, False))  # noqa: E731 - server flags; `generate` has none
    changes["freeze_settings"] = any(map(flag, ("freeze_settings", "freeze_settings_in_sections",
                                                "freeze_specific_settings")))
    changes["lock_folders"] = flag("hide_ui_dir_config") or bool(exposure(args))
    # the origin of each value: flags that are always passed count when they differ from the default
    default = Settings(data_dir=args.data_dir)
    given = [k for k, v in changes.items() if k in ("outputs_dir", "checkpoint_cache_size")
             or v != getattr(default, k)] + (["data_dir"] if Path(args.data_dir) != ROOT else [])
    return s.with_overrides(**changes).with_origin(FLAG_ORIGIN, given), notice


# GET /sdapi/v1/cmd-flags: the launch flags by their A1111 names (the API adds what Settings hold)
_REPORTED = ("listen", "server_name", "port", "share", "api", "api_log", "api_server_stop", "nowebui",
             "cors_allow_origins", "cors_allow_origins_regex", "tls_keyfile", "tls_certfile", "timeout_keep_alive",
             "theme", "enable_insecure_extension_access", "device_id", "use_cpu", "vae_path")


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def cmd_flags(args: argparse.Namespace) -> dict:
    """The launch flags in effect by their A1111 names; log-ins are never echoed."""
    out = {dest: _plain(getattr(args, dest, None)) for dest in _REPORTED}
    for name, arity in {**NO_EFFECT, **dict.fromkeys(ALREADY, 0)}.items():
        unset = {0: False, 1: None, "append": []}[arity]
        out[_dest(name)] = _plain(getattr(args, _dest(name), unset))
    out.update(gradio_auth=None, gradio_auth_path=None, api_auth=None, disable_safe_unpickle=False,
               ngrok=None, ngrok_options=None)  # tokens
    return out


def build_parser() -> argparse.ArgumentParser:
    p = FlagParser(prog="app.py", description="Latent Studio: Stable Diffusion in your browser")
    add_common_flags(p)
    add_server_flags(p)
    add_ignored_flags(p)
    sub = p.add_subparsers(dest="command")
    g = sub.add_parser("generate", help="generate images headless and print the saved paths")
    # Given after `generate`, these flags override; not given, they must not reset what came before it.
    add_common_flags(g, defaults=False)
    g.add_argument("--prompt", required=True)
    g.add_argument("--negative-prompt", default="")
    g.add_argument("--steps", type=int)
    g.add_argument("--sampler", help="A1111 sampler name, e.g. 'Euler a', 'DPM++ 2M Karras'")
    g.add_argument("--scheduler", help="schedule type: Automatic, Uniform, Karras, Exponential, ...")
    g.add_argument("--cfg-scale", type=float)
    g.add_argument("--seed", type=int, default=-1)
    g.add_argument("--subseed", type=int, default=-1)
    g.add_argument("--subseed-strength", type=float, default=0.0)
    g.add_argument("--width", type=int, help="default: the model's native size")
    g.add_argument("--height", type=int)
    g.add_argument("--batch-size", type=int, default=1)
    g.add_argument("--n-iter", type=int, default=1)
    g.add_argument("--clip-skip", type=int, default=1)
    g.add_argument("--init-image", type=Path, help="img2img: the starting image")
    g.add_argument("--resize-mode", type=int, default=0, help="0 just resize, 1 crop and resize, 2 resize and fill")
    g.add_argument("--denoising-strength", type=float, default=0.75)
    add_serve_ray_parser(sub)
    add_train_parsers(sub, add_common_flags)
    from webui.cli_inspect import add_inspect_parser

    add_inspect_parser(sub, add_common_flags)
    return p


def add_serve_ray_parser(sub) -> None:
    """`serve-ray`: the REST API on Ray Serve (webui/serving). The folder, device, auth and address flags work
    before or after it (given after it they override); the deployment's own flags only after it."""
    s = sub.add_parser("serve-ray", help="serve the A1111 API on Ray Serve: many replicas, one model each "
                       "(needs requirements-ray.txt)")
    add_common_flags(s, defaults=False)
    keep = argparse.SUPPRESS
    switch, text = {"action": "store_true"}, {}
    for names, kw in ((("--listen",), switch), (("--server-name",), text), (("--port",), {"type": int}),
                      (("--auth", "--gradio-auth"), text), (("--auth-file", "--gradio-auth-path"), {"type": Path}),
                      (("--api-auth",), text), (("--api-log",), switch), (("--cors-allow-origins",), text),
                      (("--cors-allow-origins-regex",), text), (("--freeze-settings",), switch)):
        s.add_argument(*names, default=keep, help="as before the subcommand", **kw)
    g = s.add_argument_group("Ray Serve")
    scale = g.add_mutually_exclusive_group()
    scale.add_argument("--replicas", type=int, default=1, help="generation replicas (default 1)")
    scale.add_argument("--autoscale", metavar="MIN-MAX", help="scale between MIN and MAX replicas on queue length")
    g.add_argument("--gpus-per-replica", type=float, default=0.0, help="GPUs each replica holds (1 on a GPU cluster; "
                   "default 0: CPU)")
    g.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs Ray reserves for each replica")
    g.add_argument("--threads-per-replica", type=int, default=1, help="torch CPU threads in each replica")
    g.add_argument("--max-ongoing-requests", type=int, default=4, help="requests one replica takes at once")
    g.add_argument("--address", help="Ray cluster to join (e.g. auto, or ray://head:10001); default: RAY_ADDRESS, "
                   "else a local Ray started for this command")
