"""How the Ray Serve application is laid out, from the `serve-ray` flags (or a `serve run` YAML's `args`): replicas
or autoscaling bounds, GPUs, CPUs and torch threads per replica, how many requests a replica takes at once. Plain
Python: importable (and tested) without ray installed."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

APP_NAME = "latent-studio"
GENERATOR = "Generator"  # the generation deployment's name (its replicas' actors: SERVE_REPLICA::app#Generator#id)
# the `serve run` YAML's args, and the flags they become (anything else in `args` is refused by name)
YAML_ARGS = {"flags": None, "replicas": "--replicas", "autoscale": "--autoscale",
             "gpus_per_replica": "--gpus-per-replica", "cpus_per_replica": "--cpus-per-replica",
             "threads_per_replica": "--threads-per-replica", "max_ongoing_requests": "--max-ongoing-requests"}


class ConfigError(ValueError):
    pass


def parse_autoscale(text: str) -> tuple[int, int]:
    """'MIN-MAX' (e.g. '1-4'; MIN may be 0) -> (MIN, MAX)."""
    low, sep, high = str(text).partition("-")
    try:
        bounds = int(low), int(high)
    except ValueError:
        raise ConfigError(f"--autoscale must look like MIN-MAX, e.g. 1-4 (got {text!r})") from None
    if not sep or bounds[0] < 0 or bounds[1] < max(1, bounds[0]):
        raise ConfigError(f"--autoscale MIN-MAX needs 0 <= MIN <= MAX and MAX >= 1 (got {text!r})")
    return bounds


@dataclass(frozen=True)
class RayServeConfig:
    replicas: int = 1
    autoscale: tuple[int, int] | None = None  # (min, max) replicas, scaled on ongoing requests
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 1.0
    threads_per_replica: int = 1  # torch CPU threads in each replica
    max_ongoing_requests: int = 4  # requests one replica takes at once (the rest wait in Ray Serve's queue)
    models_per_replica: int = 1  # checkpoints one replica keeps loaded (--checkpoint-cache)
    target_ongoing_requests: float = 2.0  # autoscaling aims at this many requests per replica

    def __post_init__(self):
        if self.replicas < 1:
            raise ConfigError(f"--replicas must be at least 1 (got {self.replicas})")
        if self.gpus_per_replica < 0 or self.cpus_per_replica < 0:
            raise ConfigError("--gpus-per-replica and --cpus-per-replica cannot be negative")
        if self.threads_per_replica < 1 or self.max_ongoing_requests < 1 or self.models_per_replica < 1:
            raise ConfigError("--threads-per-replica, --max-ongoing-requests and --checkpoint-cache must be at least 1")

    @classmethod
    def from_args(cls, args) -> RayServeConfig:
        autoscale = getattr(args, "autoscale", None)
        return cls(replicas=_given(getattr(args, "replicas", None), 1),
                   autoscale=parse_autoscale(autoscale) if autoscale else None,
                   gpus_per_replica=float(getattr(args, "gpus_per_replica", None) or 0.0),
                   cpus_per_replica=float(_given(getattr(args, "cpus_per_replica", None), 1.0)),
                   threads_per_replica=getattr(args, "threads_per_replica", None) or 1,
                   max_ongoing_requests=getattr(args, "max_ongoing_requests", None) or 4,
                   models_per_replica=getattr(args, "checkpoint_cache", None) or 1)

    def generator_options(self) -> dict:
        """`serve.deployment(...)` options of the generation deployment."""
        actor = {"num_cpus": self.cpus_per_replica, "num_gpus": self.gpus_per_replica}
        out = {"name": GENERATOR, "ray_actor_options": actor, "max_ongoing_requests": self.max_ongoing_requests,
                   "graceful_shutdown_timeout_s": 5, "health_check_period_s": 5}
        if self.autoscale:
            low, high = self.autoscale
            out["autoscaling_config"] = {"min_replicas": low, "max_replicas": high, "initial_replicas": max(1, low),
                                         "target_ongoing_requests": self.target_ongoing_requests,
                                         "upscale_delay_s": 5, "downscale_delay_s": 120}
        else:
            out["num_replicas"] = self.replicas
        return out

    @staticmethod
    def ingress_options() -> dict:
        """The ingress decodes, validates and encodes; it never runs a model (no GPU)."""
        return {"name": "Ingress", "ray_actor_options": {"num_cpus": 0.1}, "max_ongoing_requests": 1000}


def _given(value, default):
    return default if value is None else value


def argv_from_yaml_args(args: dict) -> list[str]:
    """A `serve run` YAML's `args` (flags: the app's command-line flags as one string; replicas, autoscale, ...)
    -> the `serve-ray` command line they mean."""
    unknown = sorted(set(args) - set(YAML_ARGS))
    if unknown:
        raise ConfigError(f"unknown args in the Ray Serve config: {', '.join(unknown)} (known: {', '.join(YAML_ARGS)})")
    argv = ["serve-ray"] + shlex.split(str(args.get("flags") or ""))
    for key, flag in YAML_ARGS.items():
        if flag and args.get(key) is not None:
            argv += [flag, str(args[key])]
    return argv
