"""The CLI as a user runs it, in processes of its own: produce, run, query through the running
runtime (which holds the embedded store), stop, query the store directly."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from deploy.runtime_file import SERVING, read_runtime
from examples.orders.generator import OrderGenerator
from tests.conftest import REPO, ask_runtime
from tests.oracles import expected_orders
from tests.unit.cli.test_app import HEAVY, imported

CQRS = str(Path(sys.executable).with_name("cqrs"))


def cqrs(env, *args, check=True, timeout=120):
    done = subprocess.run(
        [CQRS, "--log-level", "WARNING", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"cqrs {args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def serve(env):
    """`cqrs serve` in a process of its own, once it serves (its runtime file says so)."""
    process = subprocess.Popen(
        [CQRS, "--log-level", "WARNING", "serve"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while (info := read_runtime(Path(env["CQRS_DATA_DIR"]))) is None or info.state != SERVING:
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the runtime did not come up"
        time.sleep(0.2)
    return process


def count(env, sql="SELECT count() FROM query.orders"):
    return json.loads(cqrs(env, "query", sql, "--format", "json").stdout)["rows"][0][0]


def test_produce_run_query_stop(env):
    cqrs(env, "topic", "create", "--partitions", "3")
    produced = cqrs(env, "produce", "--count", "3000", "--seed", "5")
    assert "sent" in produced.stderr and "errors 0" in produced.stderr

    run = subprocess.Popen(
        [CQRS, "run", str(REPO / "examples" / "orders" / "specs" / "orders.yaml")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # caught up: every produced command is applied (not "the count stood still a while");
        # asked of the runtime's API from this process (a `cqrs status` a poll would take a
        # second of the CPU the run needs; `cqrs status` itself: test_serve_replay_status_...)
        deadline = time.monotonic() + 120
        while True:
            statuses = ask_runtime(env, lambda api: api.list_deployments(), [])
            if statuses and statuses[0].done >= 3000 and statuses[0].behind_s == 0:
                break
            assert time.monotonic() < deadline, "the pipeline did not catch up"
            time.sleep(0.5)
        seen = count(env)
        assert seen > 1000, "the pipeline did not fill the projection"

        refused = cqrs(env, "query", "DROP DATABASE orders_v1", check=False)
        assert refused.returncode == 2
        assert "refused: DROP is not allowed" in " ".join(refused.stderr.split())

        second = cqrs(
            env, "run", str(REPO / "examples" / "orders" / "specs" / "orders.yaml"), check=False
        )
        assert second.returncode == 2
        assert "a runtime already runs on data dir" in second.stderr
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert "orders_v1 stopped" in err

    # The runtime is gone: the store opens in this process, with the same rows.
    assert count(env) == seen


def test_run_until_caught_up_then_replay_until_a_time(env):
    """`produce --rate` paces, `run --until-caught-up` exits by itself, and `replay --until`
    (with no runtime running) rebuilds exactly the commands logged before the time."""
    spec = str(REPO / "examples" / "orders" / "specs" / "orders.yaml")
    started = time.monotonic()
    produced = cqrs(env, "produce", "--count", "500", "--rate", "1000", "--seed", "6")
    assert time.monotonic() - started >= 0.5  # 500 commands at 1,000/s: never faster
    last = produced.stderr.split("\r")[-1]
    assert re.search(r"sent\s+500\s+acked\s+500\s+rate\s+[\d,]+/s\s+errors 0", last), last
    assert int(re.search(r"rate\s+([\d,]+)/s", last).group(1).replace(",", "")) <= 1002
    bound = int(time.time() * 1000)  # every command so far was logged by now
    while time.time() * 1000 <= bound + 1:
        time.sleep(0.001)
    cqrs(env, "produce", "--count", "300", "--seed", "7")

    done = cqrs(env, "run", spec, "--until-caught-up")
    assert "orders_v1 completed" in done.stderr
    assert count(env, "SELECT countIf(status != '') FROM orders_v1.orders FINAL") > 100

    until = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(bound // 1000)) + f".{bound % 1000:03d}Z"
    replayed = cqrs(env, "replay", spec, "--until", until, "--into", "past")
    assert "past: completed, 500 of 500 offsets" in " ".join(replayed.stderr.split())
    first = expected_orders(OrderGenerator(seed=6).take(500))
    assert count(env, "SELECT count() FROM past.orders FINAL") == len(first)


def test_validate_accepts_good_and_refuses_bad_specs(env, tmp_path):
    ok = cqrs(env, "validate", str(REPO / "examples" / "orders" / "specs" / "orders.yaml"))
    assert "orders_v1" in ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: orders\nversion: 1\nprojections: [{name: o, steps: [nope]}]\n")
    refused = cqrs(env, "validate", str(bad), check=False)
    assert refused.returncode == 2
    assert "projections[0].steps[0]: unknown filter 'nope'" in refused.stderr


def test_no_broker_is_a_clear_error(env):
    env = {k: v for k, v in env.items() if k != "CQRS_BROKERS"}
    refused = cqrs(env, "produce", "--count", "1", check=False)
    assert refused.returncode == 2
    assert "cqrs broker start" in refused.stderr


def test_dlq_tail_and_replay_after_a_fix(env, brokers):
    from commands.producer import CommandProducer
    from core.envelope import Command

    spec = str(REPO / "examples" / "orders" / "specs" / "orders.yaml")
    cqrs(env, "produce", "--count", "200", "--seed", "8")
    placed = Command(
        id="fix-placed", type="order.placed", aggregate_id="o-fixme", ts=1_767_225_700_000, v=1,
        data={"order_id": "o-fixme", "customer_id": "c-1", "region": "eu-west", "currency": "EUR",
              "items": [{"sku": "sku-001", "qty": 1, "unit_price": 9.5}]},
    )  # fmt: skip
    paid = Command(
        id="fix-paid", type="order.paid", aggregate_id="o-fixme", ts=1_767_225_700_100, v=1,
        data={"order_id": "o-fixme", "amount": 9.5, "currency": "EUR", "method": "card"},
    )  # fmt: skip
    with CommandProducer(brokers, env["CQRS_TOPIC"]) as producer:
        producer.send(paid)  # its order was never placed: rejected
        producer.flush()
    cqrs(env, "run", spec, "--until-caught-up")

    tail = cqrs(env, "dlq", "tail", "--json")
    (letter,) = [json.loads(line) for line in tail.stdout.splitlines()]
    assert letter["headers"]["reason"] == "invalid_transition"
    assert letter["headers"]["step"] == "order_state"
    assert json.loads(letter["value"])["id"] == "fix-paid"

    refused = cqrs(env, "dlq", "replay", "--offset", "99", check=False)
    assert refused.returncode == 2 and "no DLQ record at offset(s) [99]" in refused.stderr

    with CommandProducer(brokers, env["CQRS_TOPIC"]) as producer:  # the fix: place the order
        producer.send(placed)
        producer.flush()
    replayed = cqrs(env, "dlq", "replay", "--reason", "invalid_transition")
    assert "1 of 1 records back" in replayed.stderr
    cqrs(env, "run", spec, "--until-caught-up")
    status = cqrs(
        env,
        "query",
        "SELECT status FROM query.orders WHERE order_id = 'o-fixme'",
        "--format",
        "json",
    )
    assert json.loads(status.stdout)["rows"] == [["paid"]]


def test_serve_replay_status_stop_start(env):
    cqrs(env, "produce", "--count", "20000", "--seed", "9")
    runtime = serve(env)
    try:
        spec = str(REPO / "examples" / "orders" / "specs" / "orders_v2.yaml")
        done = cqrs(env, "replay", spec, "--from", "earliest", "--into", "rebuilt")
        assert "rebuilt: completed, 20,000 of 20,000 offsets" in " ".join(done.stderr.split())
        (status,) = json.loads(cqrs(env, "status", "--json").stdout)
        assert status["name"] == "rebuilt" and status["state"] == "completed"
        assert status["rows"]["top_skus_5m"] > 0
        profiled = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
        table = cqrs(profiled, "status")
        assert "rebuilt" in table.stdout and "completed" in table.stdout

        again = cqrs(env, "replay", spec, "--into", "rebuilt", check=False)
        assert again.returncode == 2 and "database rebuilt already exists" in again.stderr

        live = cqrs(profiled, "replay", spec, "--into", "live", "--follow", "--detach")
        assert "live started in the runtime" in live.stderr
        # asking the runtime loads none of what runs pipelines (the runtime checks the spec)
        for asked in (imported(table.stderr), imported(live.stderr)):
            assert "cli" in asked and asked.isdisjoint(HEAVY), sorted(asked.intersection(HEAVY))
        assert "stopped" in cqrs(env, "stop", "live").stderr
        assert "running" in cqrs(env, "start", "live").stderr
    finally:
        runtime.send_signal(signal.SIGTERM)
        _, err = runtime.communicate(timeout=60)
    assert runtime.returncode == 0, err
