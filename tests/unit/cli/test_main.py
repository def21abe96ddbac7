"""The entry point finds the subcommand and the data dir before the CLI loads."""

from cli.main import _command, _member


def test_the_command_and_data_dir_are_found_past_the_group_options():
    assert _command(["serve"]) == ("serve", None)
    assert _command(["--data-dir", "/d", "--log-level", "INFO", "serve"]) == ("serve", "/d")
    assert _command(["--data-dir=/e", "run", "spec.yaml", "--data-dir", "x"]) == ("run", "/e")
    assert _command(["--brokers", "h:1", "status"]) == ("status", None)
    assert _command(["--help"]) == (None, None)
    assert _command([]) == (None, None)


def test_a_member_of_a_cluster_across_hosts_claims_no_runtime():
    assert _member(["run", "s.yaml", "--addresses", "a:1,b:2", "--process-id", "1"])
    assert _member(["run", "s.yaml", "--process-id=2"])
    assert not _member(["run", "s.yaml", "--addresses", "a:1,b:2", "--process-id", "0"])
    assert not _member(["run", "s.yaml"])
