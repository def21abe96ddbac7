"""A broker the outage scenarios may stop and start (the session's must stay up for the others).
One serves the whole package: its first start (formatting the storage, then a JVM) costs more
than the restarts the scenarios are about."""

from collections.abc import Iterator

import pytest

from deploy.broker import LocalBroker
from tests.conftest import distribution


@pytest.fixture(scope="package")
def _own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path_factory.mktemp("own-broker"), distribution())
    yield broker
    broker.stop()


@pytest.fixture
def own_broker(_own_broker: LocalBroker) -> LocalBroker:
    """Up when the test starts, though the last test may have left it stopped."""
    _own_broker.start()
    return _own_broker
