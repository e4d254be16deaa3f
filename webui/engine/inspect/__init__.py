"""Inspect: see inside a generation (issue 21). The token view of a prompt (tokens.py), the picture at every step
(steps.py), per-token cross-attention maps captured through diffusers attention processors (attention.py), walks
through latent space (walk.py), pictures of them all (media.py), and the jobs that run them on the engine's own
planning and sampling path (run.py). Nothing here is installed on a plain generation."""
