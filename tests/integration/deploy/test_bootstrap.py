"""Which Service a command gets: with no runtime holding the data dir, the store read in this
process (what changes deployments refuses, naming `cqrs serve`); the runtime over HTTP is
covered where a runtime runs (tests/integration/deploy/test_runtime.py, tests/e2e)."""

import pytest

from core.errors import ConfigError
from deploy import bootstrap
from deploy.model import InitRequest, PromoteRequest
from deploy.offline import StoreService
from deploy.settings import Settings


@pytest.fixture
def settings(tmp_path, store, store_dsn, unique):
    return Settings(
        data_dir=tmp_path / "data", brokers="127.0.0.1:1", clickhouse=store_dsn,
        query_database=f"q_{unique}", control_database=f"c_{unique}",
    )  # fmt: skip


def test_without_a_runtime_reads_come_from_the_store_and_changes_are_refused(settings):
    service = bootstrap.service(settings)
    assert isinstance(service, StoreService)
    assert service.query("SELECT 40 + 2 AS answer").rows == [[42]]
    no_runtime = f"no runtime runs on data dir {settings.data_dir}; start one with `cqrs serve`"
    for change in (
        lambda: service.start("orders_v1"),
        lambda: service.deploy_init(InitRequest("name: x")),
        lambda: service.deploy_promote("orders", PromoteRequest()),
    ):
        with pytest.raises(ConfigError) as refused:
            change()
        assert str(refused.value) == no_runtime
    with pytest.raises(ConfigError) as refused:
        bootstrap.runtime_service(settings)
    assert str(refused.value) == no_runtime
