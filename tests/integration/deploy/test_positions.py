"""`--from` and `--until` resolved against a real log into the offsets a replay starts and stops
at: two batches of commands either side of a moment, and every form of position."""

import time

import pytest

from commands.log import CommandLog
from core.errors import ConfigError
from deploy.positions import parse_from, parse_until, resolve
from examples.orders.generator import OrderGenerator
from tests.conftest import produce
from tests.integration.deploy.test_runtime import wait_for


def test_positions_resolve_to_the_offsets_they_name(brokers, make_topic):
    topic = make_topic(partitions=2)
    generator = OrderGenerator(seed=7)
    with CommandLog(brokers, topic) as log:
        produce(brokers, topic, generator.take(60))
        before = log.end_offsets()  # the first batch, all logged by now
        bound = int(time.time() * 1000)
        wait_for(lambda: time.time() * 1000 > bound + 1, every_s=0.001)
        produce(brokers, topic, generator.take(60))
        ends = log.end_offsets()
        assert all(before[p] > 0 for p in (0, 1)) and all(ends[p] > before[p] for p in (0, 1))
        zero = {0: 0, 1: 0}

        def positions(start, until=None):
            return resolve(log, parse_from(start), None if until is None else parse_until(until))

        assert positions("earliest") == (zero, None)  # no bound: it tails
        assert positions("latest") == (ends, None)
        assert positions(str(bound + 1)) == (before, None)  # the first command after the bound
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(bound // 1000))
        assert positions(f"{iso}.{bound % 1000:03d}Z") == positions(str(bound))
        assert positions(str(bound + 3_600_000)) == (ends, None)  # after every command: the end
        assert positions("0:3") == ({0: 3, 1: 0}, None)  # unnamed partitions from the beginning
        assert positions(f"0:{ends[0]},1:1") == ({0: ends[0], 1: 1}, None)  # the end is allowed

        assert positions("earliest", str(bound)) == (zero, before)  # stops after the bound
        assert positions("earliest", "now") == (zero, ends)
        assert positions("0:2", str(bound)) == ({0: 2, 1: 0}, before)
        # a bound before the start: the range is empty, it stops where it starts
        assert positions("latest", str(bound)) == (ends, ends)
        assert positions("earliest", "0") == (zero, zero)

        for start, message in [
            ("0:5,7:1", r"--from names partitions \[7\]; " + topic + r" has \[0, 1\]"),
            (f"1:{ends[1] + 1}", f"--from 1:{ends[1] + 1} is outside partition 1, which holds "
                                 f"offsets 0 to {ends[1] - 1}"),
        ]:  # fmt: skip
            with pytest.raises(ConfigError, match=message):
                positions(start)
