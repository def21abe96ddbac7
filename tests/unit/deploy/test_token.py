"""The token file: made once with mode 0600 from the start, kept across restarts, replaced when
others could read it."""

import os
import stat

from deploy.token import ensure_token, read_token


def test_the_token_is_private_and_kept(tmp_path):
    path = tmp_path / "data" / "token"
    os.umask(0o000)  # even with a careless umask, never readable by others
    try:
        token = ensure_token(path)
    finally:
        os.umask(0o022)
    assert len(token) >= 40 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_token(path) == token == read_token(path)
    assert not path.with_name("token.tmp").exists()


def test_an_exposed_token_is_replaced(tmp_path):
    path = tmp_path / "token"
    token = ensure_token(path)
    path.chmod(0o644)
    replaced = ensure_token(path)
    assert replaced != token and stat.S_IMODE(path.stat().st_mode) == 0o600
