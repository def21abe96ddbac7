"""docker-compose.yml is valid for Debian's docker-compose (1.29), which also refuses the
top-level `name:` key that newer `docker compose` accepts; and every file it mounts exists
(finding no mount at all fails: the check must have something to check)."""

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
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


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


def test_the_mount_finder_sees_both_forms():
    compose = {
        "services": {
            "a": {"volumes": ["./x:/x:ro", "data:/data", "/etc/y:/y"]},
            "b": {"volumes": [{"type": "bind", "source": "./z", "target": "/z"},
                              {"type": "volume", "source": "data", "target": "/d"}]},
        }
    }  # fmt: skip
    assert bind_mounts(compose) == ["./x", "/etc/y", "./z"]
