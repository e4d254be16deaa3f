"""The security suite (issue 15): each test sends the exact request an attacker's probe sent and asserts on the
answer (status, body, files). API tests reuse the live API server of tests/api."""
from tests.api.conftest import api_models, client, idle_engine, server  # noqa: F401 - fixtures shared with tests/api
