"""Shared test setup: offline, one CPU thread, and a way to forbid the network."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

# Nothing in the test suite may download from a hub.  Set before any
# huggingface library is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


class NetworkBlocked(RuntimeError):
    """Raised when a test tries to open a network connection."""


@pytest.fixture
def no_network(monkeypatch):
    """Fail any outgoing socket connection (AF_UNIX sockets stay allowed)."""

    def guard(original):
        def connect(self, address, *args, **kwargs):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise NetworkBlocked(f"network access attempted: {address!r}")
            return original(self, address, *args, **kwargs)

        return connect

    monkeypatch.setattr(socket.socket, "connect", guard(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guard(socket.socket.connect_ex))

    def no_dns(*args, **kwargs):
        raise NetworkBlocked(f"DNS lookup attempted: {args[:1]!r}")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    yield
