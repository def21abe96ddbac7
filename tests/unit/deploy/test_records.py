"""The deployment registry on the embedded engine: a registry made by an earlier version (before
clusters had a shape) is upgraded in place when a runtime opens it, its rows kept."""

from deploy.model import Desired, Origin, Stage, State
from deploy.records import Records

#: the registry's table as the version before clusters made it (deploy/records.py before
#: ccf008b, through sinks.ddl.create_table): no processes, no workers
OLD_DEPLOYMENTS = """
CREATE TABLE {db}.deployments (
  name String,
  pipeline LowCardinality(String),
  version UInt32,
  spec String,
  source String,
  topic String,
  start String,
  stop String,
  desired LowCardinality(String),
  state LowCardinality(String),
  stage LowCardinality(String),
  error String,
  created_at DateTime64(3, 'UTC'),
  updated_at DateTime64(3, 'UTC'),
  revision UInt64,
  origin LowCardinality(String)
)
ENGINE = ReplacingMergeTree(revision)
ORDER BY (name)
"""
OLD_ROWS = """
INSERT INTO {db}.deployments VALUES
  ('orders_v1', 'orders', 1, 'name: orders', 'orders.yaml', 'commands', '{{"0":0,"1":5}}', '',
   'running', 'stopped', 'active', '', 1700000000000, 1700000000000, 1, 'local'),
  ('orders_v1', 'orders', 1, 'name: orders', 'orders.yaml', 'commands', '{{"0":0,"1":5}}', '',
   'running', 'running', 'active', '', 1700000000000, 1700000001000, 2, 'local'),
  ('replay', 'orders', 2, 'name: orders', 'v2.yaml', 'commands', '{{"0":3}}', '{{"0":9}}',
   'stopped', 'completed', '', '', 1700000002000, 1700000002000, 3, 'api')
"""


def test_a_registry_from_before_clusters_is_upgraded_with_its_rows_on_one_process(store, unique):
    db = f"old_registry_{unique}"
    store.command(f"CREATE DATABASE {db}")
    store.command(OLD_DEPLOYMENTS.format(db=db))
    store.command(OLD_ROWS.format(db=db))

    records = Records(store, db)
    records.create_tables()
    records.create_tables()  # every runtime opens it so: the upgrade runs again harmlessly

    live, replay = records.all()
    assert (live.name, live.state, live.stage, live.desired) == (
        "orders_v1", State.RUNNING, Stage.ACTIVE, Desired.RUNNING,
    )  # fmt: skip
    assert (live.start, live.stop, live.processes, live.workers) == ({0: 0, 1: 5}, None, 1, 1)
    assert (replay.stop, replay.origin, replay.processes, replay.workers) == (
        {0: 9}, Origin.API, 1, 1,
    )  # fmt: skip

    live.processes, live.workers = 2, 3
    records.save(live)
    again = records.get("orders_v1")
    assert again is not None and (again.processes, again.workers) == (2, 3)
    assert (again.state, again.start, again.created_at) == (
        State.RUNNING,
        {0: 0, 1: 5},
        live.created_at,
    )
    assert records.get("replay").processes == 1
