"""The broker stops for ten seconds while clients send commands through a real edge: the edge
answers 503 (with Retry-After) for what the broker did not acknowledge, never 202; clients
resend those with the same ids; afterwards the log holds exactly the commands answered 202,
each where its answer said (a resend of a command that had landed after all is a duplicate of
the same bytes, which `dedupe` drops: the test reports how many)."""

import json
import threading
import time

import msgspec
import pytest

from commands.log import CommandLog
from examples.orders.generator import OrderGenerator
from tests.integration.commands.edge_process import EdgeProcess, logged

CLIENTS = 4
BATCH = 50


@pytest.mark.slow  # starts and stops a broker of its own
def test_a_broker_outage_costs_503s_and_loses_or_invents_nothing(tmp_path, own_broker):
    broker = own_broker
    bootstrap = broker.start().bootstrap
    edge = None
    try:
        with CommandLog(bootstrap, "outage") as log:
            log.ensure(3)
        edge = EdgeProcess(bootstrap, "outage", tmp_path / "edge")
        start_ms = int(time.time() * 1000) - 60_000
        commands = OrderGenerator(seed=11, start_ms=start_ms, step_ms=0.1).take(12_000)
        batches = [commands[i : i + BATCH] for i in range(0, len(commands), BATCH)]
        accepted: dict[str, tuple[int, int]] = {}
        statuses: list[tuple[float, int]] = []
        lock = threading.Lock()
        down: list[float] = []

        def client(mine):
            queue = list(mine)
            deadline = time.monotonic() + 300
            while queue and time.monotonic() < deadline:
                batch = queue.pop(0)
                body = msgspec.json.encode(batch)
                try:
                    status, answer, headers = edge.post(body)
                except OSError:
                    queue.append(batch)
                    continue
                with lock:
                    statuses.append((time.monotonic(), status))
                    for entry in answer["commands"]:
                        if entry["status"] == 202:
                            assert accepted.setdefault(entry["id"], where := (
                                entry["partition"], entry["offset"])) == where  # fmt: skip
                assert status in (202, 503), answer
                if status == 503:
                    assert headers["retry-after"] == "1"
                    left = {e["id"] for e in answer["commands"] if e["status"] != 202}
                    queue.append([c for c in batch if c.id in left])
                    time.sleep(1)

        threads = [
            threading.Thread(target=client, args=(batches[i::CLIENTS],)) for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(accepted) < 1000:
            assert time.monotonic() < deadline, "the edge accepted too little before the outage"
            time.sleep(0.1)
        broker.stop()
        down.append(time.monotonic())
        time.sleep(10)  # the scenario: ten seconds without a broker
        broker.start()
        down.append(time.monotonic())
        for thread in threads:
            thread.join(300)
        assert len(accepted) == len(commands), "clients gave up before every command was in"

        outage = [s for t, s in statuses if down[0] + 6 < t < down[1]]
        assert outage and set(outage) == {503}, "only 503s once the producer gave up on sends"
        records = logged(bootstrap, "outage")
        by_id: dict[str, list] = {}
        for partition, offset, command in records:
            by_id.setdefault(command.id, []).append((partition, offset, command))
        assert set(by_id) == set(accepted) == {c.id for c in commands}
        for command in commands:
            places = by_id[command.id]
            assert all(found == command for _, _, found in places)
            assert accepted[command.id] in [(p, o) for p, o, _ in places]
        duplicates = len(records) - len(by_id)
        summary = {"commands": len(commands), "records": len(records), "duplicates": duplicates,
                   "503s": sum(1 for _, s in statuses if s == 503)}  # fmt: skip
        print("edge outage:", json.dumps(summary))
    finally:
        if edge is not None:
            assert edge.stop() == 0
