"""`python app.py train-lora ...` / `train-embedding ...`: train on a checkpoint from a folder of images, print the
progress (a bar with the loss) and the path of the file written. Ctrl+C stops the run and saves what it learned."""
from __future__ import annotations

import argparse
import sys
from concurrent.futures import wait
from pathlib import Path


def request_from_args(args: argparse.Namespace):
    from webui.engine import TrainingRequest

    method = "lora" if args.command == "train-lora" else "embedding"
    lr = args.lr
    if lr is not None:
        try:
            lr = float(lr)
        except ValueError:
            pass  # an A1111 schedule string, checked by the engine
    extra = {"trigger": args.trigger, "class_prompt": args.class_prompt, "rank": args.rank, "alpha": args.alpha,
             "train_text_encoder": args.train_text_encoder} if method == "lora" else \
        {"init_text": args.init_text, "num_vectors": args.num_vectors, "template": args.template}
    return TrainingRequest(method, args.name, image_dir=Path(args.images), caption_extension=args.caption_extension,
                           steps=args.steps, learning_rate=lr, batch_size=args.batch_size, seed=args.seed,
                           resolution=args.resolution, buckets=args.buckets, flip=args.flip,
                           gradient_checkpointing=args.gradient_checkpointing, sample_every=args.sample_every,
                           sample_prompt=args.sample_prompt, save_every=args.save_every, resume=args.resume,
                           overwrite=args.overwrite, loss_weighting=args.loss_weighting, **extra)


def _follow(engine, job) -> None:
    """A tqdm bar over the steps with the loss, until the job ends; Ctrl+C interrupts it (the file is saved)."""
    from tqdm import tqdm

    with tqdm(total=1, unit="step", file=sys.stderr, desc=job.plan.request.name) as bar:
        while not job.future.done():
            try:
                wait([job.future], timeout=0.2)
            except KeyboardInterrupt:
                engine.interrupt()
                print("\ninterrupting: saving the last step ...", file=sys.stderr)
            st = job.state
            if st.sampling_steps and (bar.n, bar.total) != (st.sampling_step, st.sampling_steps):
                bar.total, bar.n = st.sampling_steps, st.sampling_step
                if job.plan.monitor.losses:
                    bar.set_postfix(loss=f"{job.plan.monitor.losses[-1][1]:.4f}")
                bar.refresh()


def run_training(args: argparse.Namespace) -> int:
    from webui.engine import CheckpointLoadError, Engine, RequestError
    from webui.flags import settings_from_args

    settings, notice = settings_from_args(args)
    if notice:
        print(notice, file=sys.stderr)
    engine = Engine(settings)
    try:
        request = request_from_args(args)
        model = engine.load_checkpoint(args.ckpt)
        print(f"Model: {model.title} ({model.spec.label}) on {engine.device.describe()}", file=sys.stderr)
        job = engine.submit_training(request)
        _follow(engine, job)
        result = job.result()
    except (CheckpointLoadError, RequestError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.close()
    folder = Path(settings.outputs_path) / "train-samples" / result.name
    for step, image in result.samples:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{step:06d}.png"
        image.save(path)
        print(f"sample: {path}", file=sys.stderr)
    state = "interrupted after" if result.interrupted else "trained for"
    print(f"{state} {result.steps} steps in {result.seconds:.0f}s", file=sys.stderr)
    print(result.path)
    return 0
