"""Every error the engine reports to the user is an EngineError and keeps its standard base (ValueError for bad
input, RuntimeError for a failure), so callers can catch either."""
import pytest

from webui.engine.checkpoints.loader import CheckpointLoadError
from webui.engine.errors import EngineError
from webui.engine.generation import NonFiniteOutputError
from webui.engine.jobs import QueueFullError
from webui.engine.networks.common import NetworkError, NetworkNotFound, UnsupportedNetworkError
from webui.engine.prompts.attention import PromptWeightError
from webui.engine.prompts.extra_networks import ExtraNetworkError
from webui.engine.prompts.schedule import PromptScheduleError
from webui.engine.prompts.styles import StyleError
from webui.engine.prompts.wildcards import WildcardError
from webui.engine.requests import NotFoundError, RequestError
from webui.engine.samplers import SamplerError
from webui.settings import SettingError, SettingLocked

BAD_INPUT = [RequestError, NotFoundError, SamplerError, NetworkError, NetworkNotFound, UnsupportedNetworkError,
             PromptWeightError, ExtraNetworkError, PromptScheduleError, StyleError, WildcardError, SettingError,
             SettingLocked]
FAILURES = [CheckpointLoadError, QueueFullError, NonFiniteOutputError]


@pytest.mark.parametrize("cls", BAD_INPUT)
def test_bad_input_errors_are_engine_errors_and_value_errors(cls):
    assert issubclass(cls, EngineError) and issubclass(cls, ValueError)


@pytest.mark.parametrize("cls", FAILURES)
def test_failures_are_engine_errors_and_runtime_errors(cls):
    assert issubclass(cls, EngineError) and issubclass(cls, RuntimeError)
