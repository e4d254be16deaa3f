"""The A1111 API on Ray Serve (`python app.py serve-ray`, `serve run webui/serving/serve_config.yaml`): an optional
extra (requirements-ray.txt). Only `ray_config` is importable without ray; the rest is imported by `serve-ray`.

    ray_config      the deployment options (replicas, autoscaling, GPUs and CPUs per replica) from the flags
    ray_app         the application: the ingress deployment (the same FastAPI app and routers as the plain server)
                    bound to the generation deployment; `serve-ray` and the builder that `serve run` imports
    generation      the generation deployment: one Engine per replica, checkpoints multiplexed by title
    remote_engine   the engine the ingress's API talks to (EngineAPI): generation forwarded to the replicas
    job_control     the actor that carries interrupt and skip to the replica running a job
"""
