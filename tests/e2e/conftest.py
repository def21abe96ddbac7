"""The environment every CLI test runs `cqrs` in: the session's broker, a data dir and a topic
of the test's own, any free port for the runtime."""

import os

import pytest


@pytest.fixture
def env(tmp_path, brokers, unique):
    return {
        **os.environ,
        "CQRS_BROKERS": brokers,
        "CQRS_DATA_DIR": str(tmp_path / "data"),
        "CQRS_TOPIC": f"e2e_{unique}",
        "CQRS_HTTP_PORT": "0",
    }
