"""A real agent on 127.0.0.1 (ephemeral port, background thread) for each test that asks."""

from __future__ import annotations

import pytest

from agent_kit import TOKEN, Client, make_model
from autoprune.agent import AgentConfig, AgentServer


@pytest.fixture
def agent_factory():
    servers = []

    def start(**overrides) -> AgentServer:
        cfg = {"port": 0, "token": TOKEN, **overrides}
        s = AgentServer(AgentConfig(**cfg)).start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.shutdown()


@pytest.fixture
def agent(agent_factory) -> AgentServer:
    return agent_factory(max_body_mb=1.0, read_timeout_s=1.0)


@pytest.fixture
def client(agent) -> Client:
    return Client(agent.url)


@pytest.fixture(scope="session")
def tiny() -> bytes:
    return make_model()
