"""One spec that uses upcast, redact, set, map and route, session windows read through the
stable view, and two topic projections (forward), run by `cqrs run` on the real broker and
engine; then what a user checks without a runtime: `status`, `query` as a table and as CSV,
`dlq tail` and a dry `dlq replay`, and the spec drawn by `graph`."""

import hashlib
import json
import re

from commands.log import CommandLog
from commands.producer import CommandProducer
from core.envelope import Command, decode_command
from tests.conftest import read_log
from tests.e2e.test_cli import cqrs

SPEC = """\
name: steps
version: 1
filters:
  - upcast:
      rules: [{{type: visit, from: 1, to: 2, rename: {{user: visitor}}}}]
  - redact: {{fields: [data.email], salt: pepper}}
  - set: {{fields: {{channel: web}}}}
  - map: {{fields: {{page: data.page}}}}
  - route:
      routes: [{{when: {{type: visit}}, to: [visits, visits_out]}}]
      default: [signups_out]
projections:
  - name: visits
    steps:
      - session:
          gap: 10s
          group_by: {{visitor: data.visitor}}
          aggregates: {{n: count, pages: {{count_distinct: page}}}}
  - name: visits_out
    topic: {topic}_visits
    steps: [forward]
  - name: signups_out
    topic: {topic}_signups
    steps: [forward]
"""


def visit(n, who, ts, page, v=2):
    data = {"visitor" if v == 2 else "user": who, "page": page}
    return Command(id=f"c{n}", type="visit", aggregate_id=who, ts=ts, v=v, data=data)


SIGNUP = Command(
    id="c4", type="signup", aggregate_id="carol", ts=4_500, v=1,
    data={"email": "carol@example.com", "plan": "free"},
)  # fmt: skip
COMMANDS = [
    visit(1, "alice", 1_000, "home", v=1),
    visit(2, "bob", 2_000, "home"),
    visit(3, "alice", 4_000, "cart", v=1),
    SIGNUP,
    visit(5, "bob", 5_000, "home"),
    visit(6, "alice", 9_000, "cart"),
    visit(7, "alice", 40_000, "pay"),  # 31 s after her last: a new session
    Command(id="c8", type="visit", aggregate_id="dave", ts=41_000, v=1, data={"page": "home"}),
    visit(9, "zoe", 1_000_000, "home"),  # moves the watermark past every session above
]
#: alice 1-9 s, alice 40 s, bob 2-5 s (sessions end one gap after their last visit); dave's v1
#: visit has no `user` to rename, so upcast refuses it; zoe's session is still open
SESSIONS = [
    ["alice", 1_000, 19_000, 3, 2],
    ["alice", 40_000, 50_000, 1, 1],
    ["bob", 2_000, 15_000, 2, 1],
]


def forwarded(brokers, topic):
    """Every record of a topic, as JSON documents."""
    return [json.loads(r.value) for r in read_log(brokers, topic)]


def test_every_filter_sessions_and_topics_on_the_real_broker(env, brokers, tmp_path):
    topic = env["CQRS_TOPIC"]
    spec = tmp_path / "steps.yaml"
    spec.write_text(SPEC.format(topic=topic))
    cqrs(env, "topic", "create", "--partitions", "1")  # one partition: one watermark
    with CommandProducer(brokers, topic) as producer:
        for command in COMMANDS:
            producer.send(command)
        producer.flush()

    drawn = cqrs(env, "graph", str(spec)).stdout
    assert f"visits_out: visits_out/forward → topic {topic}_visits" in drawn
    assert "visits: visits/session (state) → table steps_v1.visits" in drawn
    assert f"steps_v1: {topic} → decode → upcast → redact → set → map → route" in drawn
    mermaid = cqrs(env, "graph", str(spec), "--format", "mermaid").stdout
    assert mermaid.startswith("flowchart LR") and f'[("topic {topic}_signups")]' in mermaid

    done = cqrs(env, "run", str(spec), "--until-caught-up")
    assert "steps_v1 completed" in done.stderr

    # session windows, merged by the stable view
    sql = (
        "SELECT visitor, toUnixTimestamp64Milli(window_start), toUnixTimestamp64Milli(window_end),"
        " n, pages FROM query.visits ORDER BY 1, 2"
    )
    assert json.loads(cqrs(env, "query", sql, "--format", "json").stdout)["rows"] == SESSIONS
    table = cqrs(env, "query", "SELECT visitor, n FROM query.visits ORDER BY visitor, n").stdout
    cells = [re.split(r"\s*[│┃]\s*", line.strip(" │┃")) for line in table.splitlines()]
    assert ["visitor", "n"] in cells
    assert [c for c in cells if c[0] in ("alice", "bob")] == [
        ["alice", "1"], ["alice", "3"], ["bob", "2"],
    ]  # fmt: skip

    # the forwarded commands: upcast, redacted, with what set and map derived
    visits = forwarded(brokers, f"{topic}_visits")
    assert [d["id"] for d in visits] == ["c1", "c2", "c3", "c5", "c6", "c7", "c9"]
    assert all(d["v"] == 2 and "user" not in d["data"] for d in visits)
    assert [d["data"]["visitor"] for d in visits[:3]] == ["alice", "bob", "alice"]
    assert [d["attrs"]["page"] for d in visits[:3]] == ["home", "home", "cart"]
    assert all(d["attrs"]["channel"] == "web" for d in visits)
    (signup,) = forwarded(brokers, f"{topic}_signups")
    assert signup["data"] == {
        "email": hashlib.sha256(b"pepper" + b"carol@example.com").hexdigest()[:32],
        "plan": "free",
    }
    assert signup["attrs"]["channel"] == "web" and "page" not in signup["attrs"]

    # what a user looks at with no runtime running: the store opens in the CLI itself
    (status,) = json.loads(cqrs(env, "status", "--json").stdout)
    assert (status["name"], status["state"]) == ("steps_v1", "completed")
    assert status["rows"] == {"visits": 3} and sum(status["lag"].values()) == 0
    shown = cqrs(env, "status").stdout
    assert re.search(r"steps_v1\s*│\s*completed\s*│\s*0\s*│", shown), shown
    (letter,) = [
        json.loads(line) for line in cqrs(env, "dlq", "tail", "--json").stdout.splitlines()
    ]
    assert (letter["headers"]["reason"], letter["headers"]["step"]) == ("upcast_failed", "upcast")
    assert decode_command(letter["value"].encode()).id == "c8"
    shown = " ".join(cqrs(env, "dlq", "tail").stdout.split())
    assert f"{letter['offset']} upcast_failed at upcast (steps_v1, {topic}[0]@7)" in shown
    dry = cqrs(env, "dlq", "replay", "--all", "--dry-run")
    assert f"would replay {letter['offset']} (upcast_failed)" in dry.stderr
    with CommandLog(brokers, topic) as log:
        assert log.end_offsets() == {0: len(COMMANDS)}  # a dry run sends nothing
    csv = cqrs(env, "query", "SELECT visitor, n FROM query.visits ORDER BY 1, 2", "--format", "csv")
    assert csv.stdout.splitlines() == ["visitor,n", "alice,1", "alice,3", "bob,2"]
