"""The entry point finds the subcommand and the data dir before the CLI loads."""

from cli.main import _command


def test_the_command_and_data_dir_are_found_past_the_group_options():
    assert _command(["serve"]) == ("serve", None)
    assert _command(["--data-dir", "/d", "--log-level", "INFO", "serve"]) == ("serve", "/d")
    assert _command(["--data-dir=/e", "run", "spec.yaml", "--data-dir", "x"]) == ("run", "/e")
    assert _command(["--brokers", "h:1", "status"]) == ("status", None)
    assert _command(["--help"]) == (None, None)
    assert _command([]) == (None, None)
