"""`cqrs run`'s flags for a cluster across hosts, refused before anything starts, each with a
message naming the flag and the fix."""

import pytest
from click.testing import CliRunner

from cli.app import cqrs
from tests.conftest import REPO

SPEC = str(REPO / "examples" / "orders" / "specs" / "orders.yaml")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--addresses", "a:1,b:2"], "--addresses and --process-id go together"),
        (["--process-id", "1"], "--addresses and --process-id go together"),
        (["--addresses", "a:1,b:2", "--process-id", "2"], "--process-id 2 is not a process"),
        (["--addresses", "a:1,b", "--process-id", "1"], "'b' is not host:port"),
        (["--addresses", "a:1,b:2", "--process-id", "8"], "not in the range 0<=x<=7"),
        (["--addresses", "a:1,b:2", "--process-id", "0", "--processes", "2"],
         "leave --processes out"),
        (["--addresses", "a:1,b:2", "--process-id", "0", "--runtime-url", "http://a:1"],
         "--runtime-url is for a member"),
        (["--runtime-url", "http://a:1"], "--runtime-url is for a member"),
    ],
)  # fmt: skip
def test_cluster_flags_are_refused_with_the_fix(flags, says, tmp_path):
    done = CliRunner().invoke(
        cqrs, ["--data-dir", str(tmp_path), "run", SPEC, *flags], catch_exceptions=False
    )
    assert done.exit_code == 2, done.output
    assert says in done.output, done.output


def test_a_member_without_process_0s_token_is_told_where_it_is(tmp_path, monkeypatch):
    monkeypatch.delenv("CQRS_TOKEN", raising=False)
    monkeypatch.setenv("CQRS_BROKERS", "127.0.0.1:1")
    done = CliRunner().invoke(
        cqrs, ["--data-dir", str(tmp_path), "run", SPEC, "--addresses", "a:1,b:2",
               "--process-id", "1"],
    )  # fmt: skip
    assert "process 0's API token: set CQRS_TOKEN" in str(done.exception), done.output
