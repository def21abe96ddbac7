"""A member of a cluster across hosts follows process 0's runs: it joins a run once, ends its
partitions when process 0 stops, starts another run or is out of reach, and refuses recovery
partitions of its own. Process 0's API is a stand-in here (the real one: tests/e2e/test_hosts.py)."""

import threading

import pytest

from core.errors import ConfigError, CqrsError
from deploy import member as member_module
from deploy.client import RequestRefused
from deploy.member import Member, _empty_recovery
from deploy.model import MemberRun


class Process0:
    """Answers a member's asks as process 0's API would: the run given, or an error."""

    def __init__(self, answer):
        self.answer = answer
        self.reports = []

    def member_run(self, name, report):
        self.reports.append(report)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Run:
    """A run's deployment, as far as the watcher sees it: stop ends it at once."""

    def __init__(self, ended):
        self.ended = ended
        self.stops = 0

    def stop(self, timeout_s):
        self.stops += 1
        self.ended.set()


def member(answer):
    return Member(Process0(answer), "orders_v1", ["a:1", "b:2"], 1, {})


def watch(joined, answer, monkeypatch, within_s=2.0):
    """Whether the watcher of run `joined` ended it within `within_s`, process 0 answering
    `answer`."""
    monkeypatch.setattr(member_module, "POLL_S", 0.01)
    monkeypatch.setattr(member_module, "LOST_S", 0.1)
    ended = threading.Event()
    run = Run(ended)
    watcher = threading.Thread(target=member(answer)._watch, args=(run, joined, ended))
    watcher.start()
    stopped = ended.wait(within_s)
    ended.set()
    watcher.join(5)
    return stopped and run.stops == 1


def test_a_member_ends_its_run_with_process_0s(monkeypatch):
    assert watch("r1", MemberRun("r1", stopping=True, payload={}), monkeypatch)  # stopping
    assert watch("r1", MemberRun("r2", stopping=False, payload={}), monkeypatch)  # restarted
    assert watch("r1", RequestRefused("orders_v1 runs no cluster"), monkeypatch)  # over
    assert watch("r1", CqrsError("cannot reach the runtime"), monkeypatch)  # lost, for LOST_S
    goes_on = MemberRun("r1", stopping=False, payload={})
    assert not watch("r1", goes_on, monkeypatch, within_s=0.3)  # 30 asks: it goes on


def test_a_member_joins_each_run_once_and_none_that_stops():
    one = member(MemberRun("r1", stopping=False, payload={}))
    assert one._next_run().run == "r1"
    one.runs.append("r1")
    assert one._next_run() is None  # the run it has been in: it waits for the next
    assert member(MemberRun("r2", stopping=True, payload={}))._next_run() is None
    assert member(RequestRefused("none runs"))._next_run() is None
    asked = member(RequestRefused("none runs"))
    asked._pending.append(("on_accepted", [3]))
    asked._next_run()
    asked._next_run()  # each observation is carried once
    sent = [(r.process, r.partitions, r.reports) for r in asked._client.reports]
    assert sent == [(1, [], [("on_accepted", [3])]), (1, [], [])]


def test_a_member_holds_no_recovery_partition(tmp_path):
    _empty_recovery(tmp_path / "orders_v1")
    assert (tmp_path / "orders_v1").is_dir()
    (tmp_path / "orders_v1" / "part-3.sqlite3").touch()
    with pytest.raises(ConfigError, match=r"part-3\.sqlite3.*process 0 holds all"):
        _empty_recovery(tmp_path / "orders_v1")
