"""What the runtime tests of this package share: settings of their own (data dir, query and
control databases) on the session's broker and store. A test module that needs another shape
(a topic of its own, no broker) defines its own `settings`."""

import pytest

from deploy.settings import Settings


@pytest.fixture
def settings(tmp_path, brokers, store_dsn, unique):
    return Settings(
        data_dir=tmp_path / "data",
        brokers=brokers,
        clickhouse=store_dsn,
        http_port=0,
        query_database=f"q_{unique}",
        control_database=f"c_{unique}",
    )
