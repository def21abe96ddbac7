"""How commands find the runtime of a data dir: none, one starting (waited for), one serving,
and a file left behind by a runtime that died."""

import json
import threading
import time

import pytest

from core.errors import ConfigError
from deploy.runtime_file import (
    INFO_NAME,
    SERVING,
    STARTING,
    RuntimeFile,
    claim,
    find_runtime,
    read_runtime,
)


def test_no_runtime_is_found_at_once(tmp_path):
    assert read_runtime(tmp_path) is None
    assert find_runtime(tmp_path) is None
    (tmp_path / INFO_NAME).write_text(json.dumps({"pid": 1, "url": "x", "started_at": 0}))
    (tmp_path / "runtime.lock").touch()
    assert find_runtime(tmp_path) is None  # a file whose lock is free is stale


def test_a_starting_runtime_is_waited_for(tmp_path):
    runtime = RuntimeFile(tmp_path)
    runtime.acquire()
    try:
        assert read_runtime(tmp_path).state == STARTING
        threading.Timer(0.5, runtime.publish, args=("http://127.0.0.1:1",)).start()
        began = time.monotonic()
        info = find_runtime(tmp_path, wait_s=30)
        assert info.state == SERVING and info.url == "http://127.0.0.1:1"
        assert time.monotonic() - began >= 0.4
    finally:
        runtime.release()
    assert find_runtime(tmp_path) is None


def test_a_runtime_that_never_serves_is_an_error_naming_it(tmp_path):
    runtime = RuntimeFile(tmp_path)
    runtime.acquire()
    try:
        with pytest.raises(ConfigError, match=r"\(pid \d+\) is still starting after 0s"):
            find_runtime(tmp_path, wait_s=0.3)
        # the file of a dead runtime, under a lock some new runtime holds: still starting
        (tmp_path / INFO_NAME).write_text(
            json.dumps({"pid": 2**22 + 1, "url": "http://old", "started_at": 0, "state": SERVING})
        )
        assert read_runtime(tmp_path).state == STARTING
    finally:
        runtime.release()


def test_a_claimed_data_dir_is_taken_over_by_the_runtime_and_refused_to_others(tmp_path):
    assert claim(tmp_path)
    assert read_runtime(tmp_path).state == STARTING
    runtime = RuntimeFile(tmp_path)
    runtime.acquire()  # the lock this process claimed, not a second one
    try:
        runtime.publish("http://127.0.0.1:2")
        with pytest.raises(ConfigError, match="a runtime already runs on data dir"):
            RuntimeFile(tmp_path).acquire()
        assert claim(tmp_path) is False  # a second runtime command cannot claim it early
    finally:
        runtime.release()
    assert read_runtime(tmp_path) is None


def test_a_new_data_dir_is_the_owners_only(tmp_path):
    data_dir = tmp_path / "fresh"
    assert claim(data_dir)
    assert data_dir.stat().st_mode & 0o777 == 0o700
