from pathlib import Path

import pytest

from commands.errors import ConfigError
from deploy.settings import Settings


def test_defaults_are_embedded_and_local():
    s = Settings.from_env({})
    assert s.brokers is None
    assert s.topic == "commands"
    assert s.embedded
    assert s.clickhouse_dsn == f"chdb://{Path('.data').resolve() / 'clickhouse'}"


def test_environment_then_flags():
    env = {"CQRS_TOPIC": "orders", "CQRS_DATA_DIR": "/tmp/x", "CQRS_HTTP_PORT": "9000"}
    s = Settings.from_env(env, topic="other", brokers=None)
    assert s.topic == "other"  # the flag wins
    assert s.data_dir == Path("/tmp/x")
    assert s.http_port == 9000
    assert s.brokers is None  # a flag left unset does not override


def test_server_dsn_is_not_embedded():
    s = Settings.from_env({"CQRS_CLICKHOUSE": "http://localhost:8123"})
    assert not s.embedded


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CQRS_TOPIC": "bad topic!"}, "CQRS_TOPIC='bad topic!' is not a valid topic name"),
        ({"CQRS_CLICKHOUSE": "mysql://x"}, "give chdb:///path/to/dir"),
        ({"CQRS_HTTP_PORT": "eighty"}, "CQRS_HTTP_PORT='eighty' is not a port number"),
        ({"CQRS_HTTP_PORT": "70000"}, "must be a port from 1 to 65535"),
        ({"CQRS_HTTP_HOST": "0.0.0.0"}, "set CQRS_TOKEN"),
    ],
)
def test_bad_settings_name_the_variable_and_the_fix(env, message):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)


def test_other_address_with_a_token_is_allowed():
    assert (
        Settings.from_env({"CQRS_HTTP_HOST": "0.0.0.0", "CQRS_TOKEN": "s3cret"}).token == "s3cret"
    )
