"""Recovery that cannot be trusted is refused loudly, before anything is written: a missing
recovery partition or directory, or a resume offset that retention removed from the log."""

import shutil

import pytest
from kafka import KafkaAdminClient, TopicPartition

from commands.log import CommandLog
from core.errors import CommandLogError, RecoveryError
from deploy.model import State
from examples.orders.generator import OrderGenerator
from tests.conftest import produce


def counts(store, db):
    return store.query(f"SELECT count() FROM `{db}`.orders").result_rows[0][0]


@pytest.fixture
def ran_once(brokers, make_topic, orders_pipeline, run_bounded, store, tmp_path):
    topic = make_topic(partitions=2)
    produce(brokers, topic, OrderGenerator(seed=51).take(2000))
    deployment = run_bounded(orders_pipeline, topic)
    assert deployment.state is State.COMPLETED
    return topic, deployment


def recovery_dir(tmp_path, pipeline):
    """A deployment's recovery directory: named after it, under the recovery root that
    `run_bounded` gives (`<tmp_path>/recovery`)."""
    found = tmp_path / "recovery" / pipeline.deployment
    assert (found / "part-0.sqlite3").exists(), f"no recovery state at {found}"
    return found


def test_a_missing_recovery_partition_is_refused(
    ran_once, orders_pipeline, run_bounded, store, tmp_path
):
    topic, _ = ran_once
    before = counts(store, orders_pipeline.deployment)
    (recovery_dir(tmp_path, orders_pipeline) / "part-0.sqlite3").unlink()
    with pytest.raises(
        RecoveryError, match=r"recovery partition\(s\) \['part-0.sqlite3'\] are missing"
    ):
        run_bounded(orders_pipeline, topic)
    assert counts(store, orders_pipeline.deployment) == before


def test_a_missing_recovery_directory_is_refused_once_progress_exists(
    ran_once, orders_pipeline, run_bounded, store, tmp_path
):
    topic, _ = ran_once
    before = counts(store, orders_pipeline.deployment)
    shutil.rmtree(recovery_dir(tmp_path, orders_pipeline))
    with pytest.raises(RecoveryError, match="has written progress but its recovery directory"):
        run_bounded(orders_pipeline, topic)
    assert counts(store, orders_pipeline.deployment) == before


def test_a_resume_offset_removed_by_retention_is_refused(
    brokers, ran_once, orders_pipeline, run_bounded, store
):
    topic, _ = ran_once
    before = counts(store, orders_pipeline.deployment)
    produce(brokers, topic, OrderGenerator(seed=52).take(2000))
    with CommandLog(brokers, topic) as log:
        ends = log.end_offsets()
    admin = KafkaAdminClient(bootstrap_servers=brokers)
    try:  # retention catches up with the log: everything up to the end is gone
        admin.delete_records({TopicPartition(topic, p): end for p, end in ends.items()})
    finally:
        admin.close()
    with pytest.raises(Exception) as caught:
        run_bounded(orders_pipeline, topic)
    chain = []
    exc = caught.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(
        isinstance(e, CommandLogError) for e in chain
    ) or "before the log's first offset" in str(caught.value)
    assert "refusing to skip commands" in "".join(str(e) for e in chain)
    assert counts(store, orders_pipeline.deployment) == before
