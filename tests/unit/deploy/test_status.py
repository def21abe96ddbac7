"""What `cqrs status` lists and how far behind it says a deployment is, without services."""

from deploy.records import Record
from deploy.status import behind, listed


def record(name, version, stage="", pipeline="orders"):
    return Record(name=name, pipeline=pipeline, version=version, spec="", source="", topic="t",
                  start={}, stop=None, stage=stage)  # fmt: skip


def test_versions_sort_as_numbers_and_gone_deployments_only_on_request():
    records = [
        record("orders_v10", 10, "active"),
        record("orders_v2", 2, "retired"),
        record("orders_v9", 9, "aborted"),
        record("orders_v11", 11, "green"),
        record("audit_v3", 3, pipeline="audit"),
        record("rebuild", 2),
    ]
    assert [r.name for r in listed(records)] == ["audit_v3", "rebuild", "orders_v10", "orders_v11"]
    assert [r.name for r in listed(records, everything=True)] == [
        "audit_v3", "orders_v2", "rebuild", "orders_v9", "orders_v10", "orders_v11",
    ]  # fmt: skip


def test_behind_asks_only_for_partitions_with_records_left():
    asked = []

    def measure(topic, offsets):
        asked.append((topic, offsets))
        return {p: 2.5 for p in offsets}

    late = behind("t", nexts={0: 10, 1: 7, 2: 3}, ends={0: 10, 1: 9, 2: 3, 3: 4}, measure=measure)
    assert asked == [("t", {1: 7, 3: 0})]  # a partition the deployment never read counts too
    assert late == {0: 0.0, 1: 2.5, 2: 0.0, 3: 2.5}
    assert behind("t", {0: 5}, {0: 5}, measure) == {0: 0.0} and len(asked) == 1
