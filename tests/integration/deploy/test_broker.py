"""The broker launcher on its own: a port that is taken is refused before anything starts.
(Starting, finding, stopping and restarting a broker: tests/e2e/test_local_broker.py, through
the CLI.)"""

import pytest

from core.errors import BrokerError
from deploy.broker import LocalBroker
from tests.conftest import distribution


def test_a_taken_port_is_refused_clearly(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        broker = LocalBroker(tmp_path / "home", distribution(), port=taken)
        with pytest.raises(BrokerError, match=f"port {taken} on 127.0.0.1 is taken"):
            broker.start()
