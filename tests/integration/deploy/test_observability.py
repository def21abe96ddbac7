"""Metrics, dashboards and Prometheus, against a runtime running the orders pipeline."""

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from commands.producer import CommandProducer
from core.envelope import encode_command
from deploy.panels import DEMO_PANELS, GRAFANA_DIR
from deploy.runtime import Runtime
from deploy.settings import Settings
from examples.orders.dashboard import PANELS
from examples.orders.generator import OrderGenerator
from tests.conftest import REPO, produce
from tests.integration.deploy.test_runtime import wait_for

V1 = REPO / "examples" / "orders" / "specs" / "orders.yaml"
V2 = REPO / "examples" / "orders" / "specs" / "orders_v2.yaml"
ARTIFACTS = REPO / "test-artifacts"
SHARED = ("decode", "validate", "dedupe", "order_state")


@pytest.fixture
def settings(tmp_path, brokers, store_dsn, unique, make_topic):
    return Settings(
        data_dir=tmp_path / "data", brokers=brokers, clickhouse=store_dsn, http_port=0,
        topic=make_topic(partitions=3), query_database=f"q_{unique}",
        control_database=f"c_{unique}", panels=DEMO_PANELS,
    )  # fmt: skip


def named(path, name):
    return path.read_text().replace("name: orders\n", f"name: {name}\n", 1)


def scrape(runtime):
    request = urllib.request.Request(runtime.url + "/metrics")
    request.add_header("Authorization", f"Bearer {runtime.token}")
    text = urllib.request.urlopen(request).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


def total(samples, name, **labels):
    return sum(
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_add_up_with_what_the_pipeline_did(settings, brokers, unique):
    commands = OrderGenerator(seed=121).take(5000)
    with CommandProducer(brokers, settings.topic) as producer:
        for c in commands:
            producer.send(c)
        producer.send(commands[3])  # a duplicate
        producer.send_raw(b"x", b"garbage")  # not JSON
        producer.send_raw(
            commands[5].aggregate_id.encode(),
            encode_command(msgspec.structs.replace(commands[5], id="new", v=7)),
        )
        producer.flush()
    name = f"m{unique}"
    with Runtime(settings, brokers) as runtime:
        runtime.ensure(load_pipeline_named(V1, name), named(V1, name))
        dep = f"{name}_v1"
        wait_for(lambda: runtime.get_deployment(dep).done == len(commands) + 3)

        def reported():
            m = scrape(runtime)
            running = total(m, "cqrs_deployment_state", deployment=dep, state="running")
            return running == 1 and total(m, "cqrs_deployment_progress_ratio", deployment=dep) == 1

        wait_for(reported, timeout_s=30)
        m = scrape(runtime)
    consumed = total(m, "cqrs_commands_consumed_total", deployment=dep)
    accepted = total(m, "cqrs_commands_accepted_total", deployment=dep)
    rejected = sum(total(m, "cqrs_commands_rejected_total", deployment=dep, step=s) for s in SHARED)
    skipped = sum(total(m, "cqrs_commands_skipped_total", deployment=dep, step=s) for s in SHARED)
    assert consumed == len(commands) + 3
    assert (accepted, rejected, skipped) == (len(commands), 2, 1)
    assert (
        consumed == accepted + rejected + skipped
    )  # consumed = projected + rejected + deduplicated
    assert (
        total(m, "cqrs_commands_rejected_total", deployment=dep, reason="unsupported_version") == 1
    )
    assert (
        total(m, "cqrs_step_items_total", deployment=dep, step="validate", direction="in")
        == len(commands) + 2
    )
    assert total(m, "cqrs_end_to_end_latency_seconds_count", deployment=dep) > 0
    assert all(s.value == 0 for s in m["cqrs_consumer_lag"] if s.labels["deployment"] == dep)
    assert total(m, "cqrs_sink_insert_rows_count", deployment=dep, projection="orders") > 0
    assert (
        total(
            m,
            "cqrs_window_watermark_delay_seconds",
            deployment=dep,
            step="revenue_per_minute/tumbling",
        )
        > 0
    )
    assert total(m, "cqrs_deployment_progress_ratio", deployment=dep) == 1


def load_pipeline_named(path, name):
    from dataflows.spec import parse_pipeline

    return parse_pipeline(named(path, name), str(path))


def test_every_dashboard_query_runs_against_the_stable_views(settings, brokers, unique):
    produce(brokers, settings.topic, OrderGenerator(seed=122, step_ms=100).take(6000))
    name = f"g{unique}"
    with Runtime(settings, brokers) as runtime:
        runtime.ensure(load_pipeline_named(V1, name), named(V1, name))
        bg = runtime.bluegreen
        bg.init(named(V2, name), "v2.yaml")
        wait_for(lambda: bg.state(name).green_lag == 0, timeout_s=120)
        bg.promote(name)
        business = json.loads((GRAFANA_DIR / "business.json").read_text())
        by_title = {p.title: p for p in PANELS.panels}
        for grafana_panel in business["panels"]:
            sql = grafana_panel["targets"][0]["rawSql"].replace(
                "query.", f"{settings.query_database}."
            )
            result = runtime.query(sql)
            assert tuple(result.columns) == by_title[grafana_panel["title"]].columns, grafana_panel[
                "title"
            ]
            assert result.rows, f"{grafana_panel['title']} answered nothing"

        # the built-in dashboard draws the same panels, with data, in a headless browser
        ARTIFACTS.mkdir(exist_ok=True)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        assert chromium, "Debian's chromium is needed (make test installs it)"
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={settings.data_dir / 'chromium'}", "--virtual-time-budget=15000",
            "--window-size=1400,1100",
        ]  # fmt: skip
        url = runtime.dashboard_url  # the page takes the token from its address
        dom = subprocess.run(
            [chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
        ).stdout
        drawn = re.search(r'data-drawn="(\d+)"', dom)
        assert drawn and int(drawn.group(1)) > 20, dom[-2000:]
        assert "not served by the active deployment" not in dom
        assert all(f'id="panel-{p.key}"' in dom and p.title in dom for p in PANELS.panels)
        assert re.search(r'<section id="no-panels"[^>]* hidden', dom)
        assert name + "_v2" in dom  # the health table lists the deployments
        shot = ARTIFACTS / "dashboard.png"
        subprocess.run(
            [chromium, *flags, f"--screenshot={shot}", url], capture_output=True, timeout=120
        )
        assert shot.exists() and shot.stat().st_size > 10_000

    # given no domain's panels, the page shows the runtime's health and how to add panels
    with Runtime(settings.with_(panels=None, control_database=f"n_{unique}"), brokers) as bare:
        dom = subprocess.run(
            [chromium, *flags, "--dump-dom", bare.dashboard_url],
            capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip
    hint = re.search(r'<section id="no-panels"[^>]*>', dom)
    assert hint and "hidden" not in hint.group(0), dom[-2000:]
    assert "cqrs serve --panels mydomain.dashboard:PANELS" in dom and 'id="panel-' not in dom
    assert '<span id="updated">updated ' in dom  # drawn, no error


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_prometheus_scrapes_the_runtime(settings, brokers, unique, tmp_path):
    prometheus = shutil.which("prometheus")
    assert prometheus, "Debian's prometheus is needed (make test installs it)"
    name = f"s{unique}"
    with Runtime(settings, brokers) as runtime:
        runtime.ensure(load_pipeline_named(V1, name), named(V1, name))
        target = runtime.url.removeprefix("http://")
        config = tmp_path / "prometheus.yml"
        config.write_text(  # the runtime's token file, read by Prometheus as its credentials
            "global: {scrape_interval: 1s}\n"
            f"scrape_configs: [{{job_name: cqrs, static_configs: [{{targets: ['{target}']}}],\n"
            f"  authorization: {{credentials_file: '{settings.token_file.resolve()}'}}}}]\n"
        )
        port = free_port()
        server = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            generator = OrderGenerator(seed=123)
            query = urllib.parse.quote(
                f'sum(rate(cqrs_commands_consumed_total{{deployment="{name}_v1"}}[5s]))'
            )
            deadline, rate = time.monotonic() + 90, 0.0
            with CommandProducer(brokers, settings.topic) as producer:
                while time.monotonic() < deadline and rate <= 0:
                    for command in generator.take(500):
                        producer.send(command)
                    producer.flush()
                    time.sleep(0.5)
                    try:
                        answer = json.loads(
                            urllib.request.urlopen(
                                f"http://127.0.0.1:{port}/api/v1/query?query={query}"
                            ).read()
                        )
                    except OSError:
                        continue
                    result = answer["data"]["result"]
                    rate = float(result[0]["value"][1]) if result else 0.0
            assert rate > 0
        finally:
            server.terminate()
            server.wait(30)
