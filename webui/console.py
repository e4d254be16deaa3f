"""What the server prints on its console, as an A1111 user expects it: one start-up line (URL, model, device,
attention), one "Total progress" bar per generation job, and no library noise that means nothing to the user.

Everything here is installed by the entry points (`webui.server.serve`, the CLI), never on import: the engine
itself prints nothing, and importing it changes no warning filter. The progress bar is an engine step hook owned by
this module, closed when the job's future is done.
"""
from __future__ import annotations

import logging
import re
import sys
import threading
import warnings
from typing import Callable, TextIO

log = logging.getLogger(__name__)

# (category, regular expression matched at the start of the message): warnings that say nothing the user can act on
QUIET_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # diffusers, for every small model (the built-in one is 64x64) whose config names an old diffusers version
    (FutureWarning, r"The configuration file of the unet has set the default `sample_size` to smaller than 64"),
    # torchsde's Brownian tree (DPM++ SDE) on float round-off at the ends of the interval: "Should have ta>=t0 but
    # got ta=0.029167 and t0=0.029168." (and its tb / t1 siblings)
    (UserWarning, r"Should have t[ab]\w*\s*[<>]=\s*t[01] but got"),
)
# logger name -> patterns searched in the message: log records that are notices, not problems
QUIET_LOGS: dict[str, tuple[str, ...]] = {
    # DPM2 / DPM++ singlestep with an odd step count: diffusers switches lower_order_final on and says so each job
    "diffusers.schedulers.scheduling_dpmsolver_singlestep": (r"Changing scheduler",),
    # every model moved to a device or dtype: "There are modules in UNet2DConditionModel that should be kept in
    # float32: []" (an empty list: nothing to keep)
    "diffusers.models.modeling_utils": (r"should be kept in float32: \[\]",),
}


class _QuietRecords(logging.Filter):
    def __init__(self, patterns: tuple[str, ...]):
        super().__init__()
        self.patterns = [re.compile(p) for p in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record whose arguments do not format: let logging report it
            return True
        return not any(p.search(message) for p in self.patterns)


def quiet_library_noise() -> Callable[[], None]:
    """Install the warning and logging filters above (every other warning is still shown). Returns a function that
    removes the logging filters again (the warning filters belong to the process, or to a `catch_warnings`)."""
    for category, message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    installed = []
    for name, patterns in QUIET_LOGS.items():
        quiet = _QuietRecords(patterns)
        logging.getLogger(name).addFilter(quiet)
        installed.append((name, quiet))

    def undo() -> None:
        for name, quiet in installed:
            logging.getLogger(name).removeFilter(quiet)
    return undo


# ---- the progress bar ------------------------------------------------------------------------------------------

class ConsoleProgress:
    """One tqdm bar per generation job: "Total progress" over every sampling step of the job (all batches, both
    passes of hires fix), as A1111 prints it. Registered as an engine step hook; the bar is closed when the job's
    future is done (it then shows the steps the job really ran, also when it was interrupted).

    Its total is known once a pass starts: the steps left in this pass plus this pass's steps for every batch still
    to come; it grows when a second pass (hires fix) starts."""

    name = "console progress"  # the hook owner's name (webui.engine.hooks.HookOwner)
    active = True
    error: str | None = None

    def __init__(self, engine, file: TextIO | None = None, desc: str = "Total progress"):
        self.engine = engine
        self.file = file
        self.desc = desc
        self._lock = threading.RLock()  # a done-callback may run in the thread that holds it
        self._bar = None
        self._job_id: int | None = None
        self._done = 0
        self.bars = 0  # bars opened so far (for tests and the curious)

    def install(self) -> "ConsoleProgress":
        self.engine.hooks.add("step", self.on_step, 10**6, self)  # after every other step hook
        return self

    def on_step(self, state, step_index: int, latents) -> None:
        try:
            self._step(state)
        except Exception as exc:  # noqa: BLE001 - the console never breaks a job
            log.debug("console progress: %s", exc)

    def _step(self, state) -> None:
        with self._lock:
            if self._bar is None or self._job_id != state.id:
                self._close_locked(finished=False)
                self._open_locked(state)
            self._done += 1
            bar = self._bar
            steps = max(int(state.sampling_steps or 0), int(state.sampling_step or 0), 1)
            later = max(0, int(state.job_count or 1) - int(state.job_no or 0) - 1)
            estimate = self._done + max(0, steps - int(state.sampling_step or 0)) + later * steps
            bar.total = max(estimate, self._done)
            bar.update(self._done - bar.n)

    def _open_locked(self, state) -> None:
        from tqdm import tqdm

        self._job_id, self._done = state.id, 0
        self._bar = tqdm(total=max(1, int(state.sampling_steps or 1)), desc=self.desc, unit="it",
                         file=self.file or sys.stderr, leave=True, dynamic_ncols=False, ncols=100)
        self.bars += 1
        job = self.engine.current_job()
        if job is not None and job.state.id == state.id:
            job_id = state.id
            job.future.add_done_callback(lambda future: self.finish(job_id, not future.cancelled()
                                                                    and not job.state.interrupted))

    def finish(self, job_id: int, completed: bool = True) -> None:
        """Close the bar of job `job_id` (a completed job's total becomes the steps it ran)."""
        with self._lock:
            if self._job_id == job_id:
                self._close_locked(finished=completed)

    def _close_locked(self, finished: bool) -> None:
        bar, self._bar, self._job_id = self._bar, None, None
        if bar is None:
            return
        if finished:
            bar.total = bar.n
        bar.refresh()
        bar.close()


# ---- the start-up line -----------------------------------------------------------------------------------------

def startup_line(engine, url: str, what: str = "Web UI", api: bool = False) -> str:
    """'Latent Studio Web UI on http://localhost:7860 · model: x.safetensors [hash] · device: cuda float16 ·
    attention: sdpa' (plus where the REST API is)."""
    try:
        model = engine.default_checkpoint().title
    except Exception as exc:  # noqa: BLE001 - no checkpoint at all: say so here too
        model = f"none ({exc})"
    dev = engine.device
    dtype = str(dev.dtype).removeprefix("torch.")
    parts = [f"Latent Studio {what} on {url}", f"model: {model}", f"device: {dev.device} {dtype}",
             f"attention: {dev.attention}" + (" (sliced)" if dev.attention_slicing else "")
             + (f", offload {dev.offload}" if dev.offload not in (None, "none") else "")]
    if api:
        parts.append(f"REST API: {url}/sdapi/v1 (docs: {url}/docs)")
    return " · ".join(parts)
