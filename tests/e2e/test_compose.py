"""docker-compose.yml is valid for Debian's docker-compose (1.29), which also refuses the
top-level `name:` key that newer `docker compose` accepts; and every file it mounts exists
(finding no mount at all fails: the check must have something to check)."""

import os
import shutil
import subprocess

import yaml

from tests.conftest import REPO


def test_docker_compose_accepts_the_file():
    binary = shutil.which("docker-compose")
    assert binary, "Debian's docker-compose is needed (make test installs it)"
    done = subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**os.environ, "CQRS_TOKEN": "a-secret-of-the-operator"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_docker_compose_wants_a_token_of_the_operator():
    binary = shutil.which("docker-compose")
    assert binary, "Debian's docker-compose is needed (make test installs it)"
    env = {k: v for k, v in os.environ.items() if k != "CQRS_TOKEN"}
    done = subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
    )  # fmt: skip
    assert done.returncode != 0 and "set CQRS_TOKEN" in done.stderr


def test_the_reader_user_script_is_generated():
    from deploy.query import reader_user_sql

    assert (REPO / "deploy" / "clickhouse" / "reader.sql").read_text() == reader_user_sql(), (
        "run `python -m deploy.query`"
    )


def bind_mounts(compose: dict) -> list[str]:
    """The host paths the services mount (short `src:dst[:mode]` and long `{type: bind}` forms);
    named volumes are not files of the repository."""
    sources = []
    for service in compose.get("services", {}).values():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):
                source = volume.get("source", "") if volume.get("type") == "bind" else ""
            else:
                source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                sources.append(source)
    return sources


def test_every_mounted_file_exists():
    sources = bind_mounts(yaml.safe_load((REPO / "docker-compose.yml").read_text()))
    # Prometheus' config and Grafana's provisioning and dashboards: finding none is a bug here
    assert len(sources) >= 3, sources
    for source in sources:
        assert (REPO / source).exists(), source


def test_the_reader_user_script_parses_with_clickhouse(store):
    """No server here: each statement is at least one ClickHouse parses (formatQuery)."""
    from deploy.query import reader_user_sql
    from sinks.ddl import literal

    text = "\n".join(ln for ln in reader_user_sql().splitlines() if not ln.startswith("--"))
    statements = [s.strip() for s in text.split(";\n") if s.strip()]
    assert any(s.startswith("CREATE USER") for s in statements)
    for statement in statements:
        formatted = store.query(f"SELECT formatQuerySingleLine({literal(statement)})")
        assert formatted.result_rows[0][0].split(" ")[0] == statement.split(" ")[0]


def test_the_mount_finder_sees_both_forms():
    compose = {
        "services": {
            "a": {"volumes": ["./x:/x:ro", "data:/data", "/etc/y:/y"]},
            "b": {"volumes": [{"type": "bind", "source": "./z", "target": "/z"},
                              {"type": "volume", "source": "data", "target": "/d"}]},
        }
    }  # fmt: skip
    assert bind_mounts(compose) == ["./x", "/etc/y", "./z"]
