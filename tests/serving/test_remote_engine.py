"""The ingress's engine without a Ray cluster: a scripted stand-in for the generation deployment's handle (what
its `run` stream sends) and for the JobControl actor. Checks what reaches the replica (the checkpoint it is routed
by, the job id, the settings), progress mirrored for /progress, interrupt posted under the job's id, and how a lost
replica is answered. Fast: no model is loaded anywhere."""
from __future__ import annotations

import shutil
import threading

import pytest

pytest.importorskip("ray", reason="Ray Serve is an optional extra (requirements-ray.txt)")

from ray.exceptions import ActorDiedError

from tests.fixtures.builtin_generate import CHECKPOINT
from webui.api.errors import ApiError
from webui.engine import Engine, GenerationRequest, SamplerError
from webui.engine.protocol import EngineAPI
from webui.serving.remote_engine import RemoteEngine
from webui.settings import Settings


class Stream:
    """What `handle.run.remote(payload)` returns: messages, then maybe a failure; waits on `gate` after the
    first message when one is given (a job in the middle of its run)."""

    def __init__(self, messages, fail=None, gate=None):
        self.messages, self.fail, self.gate, self.cancelled = messages, fail, gate, False

    def __iter__(self):
        for i, message in enumerate(self.messages):
            yield message
            if i == 1 and self.gate is not None:
                self.gate.wait(10)
        if self.fail is not None:
            raise self.fail

    def cancel(self):
        self.cancelled = True


class Handle:
    """The generation deployment's handle: each call takes the next scripted stream and records its options."""

    def __init__(self, *streams):
        self.streams, self.calls, self._options = list(streams), [], {}
        self.run = self

    def options(self, **kw):
        self._options = kw
        return self

    def remote(self, payload):
        self.calls.append((self._options, payload))
        return self.streams.pop(0)


class Control:
    def __init__(self):
        self.posted = []
        self.post = self

    def remote(self, job_id, command):
        self.posted.append((job_id, command))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    data = tmp_path_factory.mktemp("remote-data")
    folder = data / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    shutil.copy(CHECKPOINT, folder / CHECKPOINT.name)
    shutil.copy(CHECKPOINT, folder / "shapes-copy.safetensors")
    engine = Engine(Settings(data_dir=data))
    yield engine
    engine.close()


def request(**fields) -> GenerationRequest:
    return GenerationRequest(**{"prompt": "a red circle", "steps": 4, "width": 64, "height": 64, "seed": 5, **fields})


def done(result="the result", name="SERVE_REPLICA::a#Generator#x"):
    return {"event": "done", "result": result, "replica": {"name": name, "loads": {"m": 1}, "jobs": 1, "models": ["m"],
                                                          "served": {"m": 1}}}


def test_a_job_goes_to_the_replica_of_its_checkpoint_and_comes_back(catalog):
    handle = Handle(Stream([{"event": "queued", "replica": "r1"}, done()]),
                    Stream([{"event": "queued", "replica": "r2"}, done("copy")]))
    remote = RemoteEngine(catalog, handle, Control())
    assert isinstance(remote, EngineAPI)
    assert remote.submit(request()).result(10) == "the result"
    (options, payload), = handle.calls
    default = catalog.default_checkpoint().title
    assert options == {"stream": True, "multiplexed_model_id": default}
    assert payload["request"].checkpoint == default and payload["request"].seed == 5
    assert payload["settings"]["default_steps"] == catalog.settings.default_steps and "queue_size" not in payload["settings"]
    copy = catalog.resolve_checkpoint("shapes-copy").title
    assert remote.submit(request(checkpoint=copy)).result(10) == "copy"
    assert handle.calls[1][0]["multiplexed_model_id"] == copy
    assert remote.model_cache().loads == 1 and remote.replicas()[0]["served"] == {"m": 1}


def test_engine_work_not_forwarded_yet_is_a_clear_501_never_run_in_the_ingress(catalog):
    remote = RemoteEngine(catalog, Handle(), Control())
    with pytest.raises(ApiError) as caught:
        remote.submit_inspect(object())
    assert caught.value.status_code == 501 and "submit_inspect" in caught.value.detail
    with pytest.raises(ApiError) as caught:
        remote.create_embedding("x")
    assert caught.value.status_code == 501 and "create_embedding" in caught.value.detail
    with pytest.raises(AttributeError):
        remote.no_such_method  # noqa: B018 - only the protocol's names are answered


def test_bad_input_is_refused_before_any_replica_is_asked(catalog):
    handle = Handle()
    with pytest.raises(SamplerError):
        RemoteEngine(catalog, handle, Control()).submit(request(sampler_name="No Such Sampler"))
    assert handle.calls == []


def test_progress_is_mirrored_and_interrupt_goes_to_the_running_job(catalog):
    gate, control = threading.Event(), Control()
    running = {"kind": "txt2img", "started": 1.0, "sampling_step": 3, "sampling_steps": 4, "job_count": 1}
    handle = Handle(Stream([{"event": "queued", "replica": "r1"}, {"event": "progress", "state": running},
                            done()], gate=gate))
    remote = RemoteEngine(catalog, handle, control)
    job = remote.submit(request())
    for _ in range(200):
        if remote.current_job() is job:
            break
        threading.Event().wait(0.01)
    assert remote.current_job() is job and job.state.sampling_step == 3 and remote.queue_length() == 0
    assert remote.interrupt() is True
    assert control.posted == [(job.id, "interrupt")] and job.state.interrupted
    gate.set()
    assert job.result(10) == "the result" and remote.current_job() is None
    assert remote.interrupt() is False  # nothing running: nothing posted
    assert len(control.posted) == 1


def test_an_engine_error_from_the_replica_is_raised_as_it_is(catalog):
    handle = Handle(Stream([{"event": "error", "error": SamplerError("sampler 'x' not found"), "replica": "r1"}]))
    with pytest.raises(SamplerError, match="sampler 'x' not found"):
        RemoteEngine(catalog, handle, Control()).submit(request()).result(10)


def test_a_replica_lost_mid_job_is_a_503_naming_it(catalog):
    handle = Handle(Stream([{"event": "queued", "replica": "SERVE_REPLICA::a#Generator#dead"}],
                           fail=ActorDiedError()))
    with pytest.raises(ApiError) as caught:
        RemoteEngine(catalog, handle, Control()).submit(request()).result(10)
    assert caught.value.status_code == 503 and caught.value.headers == {"Retry-After": "5"}
    assert "SERVE_REPLICA::a#Generator#dead" in caught.value.detail and "send the request again" in caught.value.detail
    assert len(handle.calls) == 1  # the job ran there: not sent again


def test_a_replica_lost_before_it_took_the_job_is_skipped_once(catalog):
    handle = Handle(Stream([], fail=ActorDiedError()), Stream([{"event": "queued", "replica": "r2"}, done()]))
    assert RemoteEngine(catalog, handle, Control()).submit(request()).result(10) == "the result"
    assert len(handle.calls) == 2
