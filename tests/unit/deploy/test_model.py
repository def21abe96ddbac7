"""The control plane's wire format: the JSON the API answers with (and the CLI and the tests
read) has the keys it had when it was built from dicts; fields a runtime does not know are left
out, not sent as null; bodies keep their names and bounds."""

import datetime as dt
import decimal
import uuid

import msgspec
import pytest

from deploy.model import (
    BlueGreenState,
    DeploymentStatus,
    Desired,
    Event,
    History,
    PromoteRequest,
    QueryResult,
    ReplayRequest,
    Stage,
    State,
    Version,
)

STATUS_KEYS = [
    "name", "pipeline", "version", "state", "desired", "stage", "error", "follow", "start",
    "stop", "next", "end", "lag", "behind", "behind_s", "done", "total", "rows",
]  # fmt: skip


def status(**changes):
    fields = dict(
        name="orders_v1", pipeline="orders", version=1, state=State.RUNNING,
        desired=Desired.RUNNING, stage=Stage.OUTSIDE, error=None, follow=True,
        start={0: 0}, stop=None, next={0: 5}, end={0: 7}, lag={0: 2}, behind={0: 0.5},
        behind_s=0.5, done=5, total=7, rows={"orders": 3},
    )  # fmt: skip
    return DeploymentStatus(**{**fields, **changes})


def roundtrip(value):
    return msgspec.json.decode(msgspec.json.encode(value))


def test_a_status_has_the_keys_of_before_and_counters_only_where_the_deployment_runs():
    doc = roundtrip(status())
    assert list(doc) == [*STATUS_KEYS, "processes", "workers"]  # the shape: 1 x 1 by default
    assert (doc["processes"], doc["workers"]) == (1, 1)
    assert (doc["state"], doc["desired"], doc["stage"]) == ("running", "running", "")
    assert doc["lag"] == {"0": 2} and doc["stop"] is None  # partitions as JSON keys
    live = roundtrip(status(consumed=10.0, accepted=9.0))
    assert list(live) == [*STATUS_KEYS, "consumed", "accepted", "processes", "workers"]
    decoded = msgspec.json.decode(msgspec.json.encode(status()), type=DeploymentStatus)
    assert decoded == status() and decoded.lag == {0: 2} and decoded.consumed is msgspec.UNSET


def test_a_blue_green_state_carries_green_fields_only_with_a_green():
    idle = BlueGreenState(pipeline="orders", pointer="orders_v1", active="orders_v1",
                          green=None, draining=None)  # fmt: skip
    assert roundtrip(idle) == {"pipeline": "orders", "pointer": "orders_v1",
                               "active": "orders_v1", "green": None, "draining": None}  # fmt: skip
    busy = BlueGreenState(pipeline="orders", pointer="orders_v1", active="orders_v1",
                          green="orders_v2", draining=None, green_status=status(),
                          green_lag=2, green_behind_s=None, green_failed=None)  # fmt: skip
    doc = roundtrip(busy)
    assert list(doc)[-4:] == ["green_status", "green_lag", "green_behind_s", "green_failed"]
    assert doc["green_behind_s"] is None and doc["green_status"]["name"] == "orders_v1"


def test_a_history_and_a_query_answer_keep_their_shape():
    history = History("orders", [Version("orders_v1", 1, Stage.ACTIVE, [])],
                      [Event("orders_v1", "2026-01-01T00:00:00+00:00", "promoted", "first")])  # fmt: skip
    assert roundtrip(history) == {
        "pipeline": "orders",
        "versions": [{"name": "orders_v1", "version": 1, "stage": "active", "changes": []}],
        "events": [{"name": "orders_v1", "at": "2026-01-01T00:00:00+00:00",
                    "event": "promoted", "detail": "first"}],
    }  # fmt: skip
    when = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    result = QueryResult(["t", "d", "u", "b"], ["DateTime", "Decimal", "UUID", "String"],
                         [[when, decimal.Decimal("1.50"), uuid.UUID(int=1), b"x\xff"]])  # fmt: skip
    assert result.to_json()["rows"] == [
        ["2026-01-01T12:00:00+00:00", "1.50", str(uuid.UUID(int=1)), "x\ufffd"]
    ]
    assert QueryResult.from_json(result.to_json()).columns == ["t", "d", "u", "b"]


def test_bodies_keep_their_names_and_bounds():
    replay = msgspec.json.decode(b'{"spec": "s", "from": "earliest"}', type=ReplayRequest)
    assert replay.start == "earliest" and roundtrip(replay)["from"] == "earliest"
    with pytest.raises(msgspec.ValidationError, match="max_behind"):
        msgspec.json.decode(b'{"max_behind": -1}', type=PromoteRequest)
    with pytest.raises(msgspec.ValidationError, match="wait"):
        msgspec.json.decode(b'{"wait": 301}', type=PromoteRequest)
    with pytest.raises(msgspec.ValidationError, match="origin"):
        msgspec.json.decode(b'{"spec": "s", "origin": "local"}', type=ReplayRequest)


def test_a_cluster_shape_from_a_client_is_bounded():
    """A request may not ask the runtime for more processes or workers than one machine is
    allowed (8 each), nor for none: refused, naming the field."""
    from deploy.model import InitRequest, ReplayRequest

    ok = msgspec.json.decode(b'{"spec": "x", "processes": 8, "workers": 2}', type=ReplayRequest)
    assert (ok.processes, ok.workers) == (8, 2)
    for body, field in ((b'{"spec": "x", "processes": 9}', "processes"),
                        (b'{"spec": "x", "workers": 0}', "workers"),
                        (b'{"spec": "x", "processes": "2"}', "processes")):  # fmt: skip
        for request in (ReplayRequest, InitRequest):
            with pytest.raises(msgspec.ValidationError, match=rf"\$\.{field}"):
                msgspec.json.decode(body, type=request)
