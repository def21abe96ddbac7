"""A domain's panels are taken by reference, as a spec's modules are: from the project's own
packages and the modules the operator allows, and a reference that cannot be used is refused
with a message naming the setting and the fix. The committed Grafana dashboards are the ones
the generator writes from the orders demo's panels."""

import textwrap

import pytest

from core.errors import ConfigError
from core.panels import Panels
from deploy import panels
from deploy.panels import DEMO_PANELS, HEALTH, dashboards, load_panels
from deploy.settings import Settings
from examples.orders.dashboard import PANELS as ORDERS


@pytest.fixture
def domain(tmp_path, monkeypatch, unique):
    """A domain package of the user's own, outside the project, on the import path."""
    package = tmp_path / f"shop_{unique}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))

    def module(name, body):
        (package / f"{name}.py").write_text(textwrap.dedent(body))
        return f"{package.name}.{name}"

    return module


GOOD = """
    from core.panels import Panel, Panels
    PANELS = Panels("Shop", (Panel("sales", "Sales", "table", "SELECT * FROM {views}.sales"),))
    NOT_PANELS = ("sales",)
"""


def test_the_demo_panels_load_from_the_project_and_a_users_only_when_allowed(domain):
    assert load_panels(Settings()) is None
    assert load_panels(Settings(panels=DEMO_PANELS)) is ORDERS
    shop = domain("dashboard", GOOD)
    with pytest.raises(ConfigError) as refused:
        load_panels(Settings(panels=f"{shop}:PANELS"))
    top = shop.split(".")[0]
    assert str(refused.value) == (
        f"CQRS_PANELS / --panels: module {shop!r} is not one the runtime may import; allow it "
        f"with --allow-module {shop} (CQRS_ALLOW_MODULES)"
    )
    allowed = Settings(panels=f"{shop}:PANELS", allow_modules=(top,))
    loaded = load_panels(allowed)
    assert isinstance(loaded, Panels) and [p.key for p in loaded.panels] == ["sales"]


@pytest.mark.parametrize(
    ("body", "attribute", "message"),
    [
        (GOOD, "NOT_PANELS", "names a tuple, not a core.panels.Panels; give module:ATTR"),
        (GOOD, "MISSING", "names nothing, not a core.panels.Panels; give module:ATTR"),
        (
            GOOD.replace('"table"', '"pie"'),
            "PANELS",
            "kind 'pie' is not one of timeseries, barchart, table; give module:ATTR",
        ),
        (
            GOOD.replace("{views}", "{db}"),
            "PANELS",
            "panel 'sales': its query may hold only the placeholder {views}",
        ),
        ("import no_such_thing_anywhere\n", "PANELS", "No module named 'no_such_thing_anywhere'"),
        ("PANELS = (\n", "PANELS", "give module:ATTR of your domain's Panels"),
    ],
)
def test_a_reference_that_cannot_be_used_is_refused_naming_the_setting(
    domain, body, attribute, message
):
    shop = domain("dashboard", body)
    settings = Settings(panels=f"{shop}:{attribute}", allow_modules=(shop,))
    with pytest.raises(ConfigError) as refused:
        load_panels(settings)
    assert str(refused.value).startswith(f"CQRS_PANELS / --panels='{shop}:{attribute}'")
    assert message in str(refused.value)


@pytest.mark.parametrize("ref", ["examples.orders.dashboard", "a b:C", ":PANELS", "x:1y"])
def test_a_malformed_reference_is_refused_by_the_settings(ref):
    with pytest.raises(ConfigError, match=r"CQRS_PANELS / --panels: .* is not a module:ATTR"):
        Settings.from_env({"CQRS_PANELS": ref})
    assert Settings.from_env({"CQRS_PANELS": DEMO_PANELS}).panels == DEMO_PANELS


def test_grafana_dashboards_are_generated_from_the_panels():
    written = dashboards(ORDERS, "query")
    assert set(written) == {"business.json", "pipeline-health.json"}
    for name, text in written.items():
        committed = (panels.GRAFANA_DIR / name).read_text()
        assert committed == text, f"run `python -m deploy.panels --panels {DEMO_PANELS}`: {name}"
    assert set(dashboards(None, "query")) == {"pipeline-health.json"}


def test_the_generator_writes_what_it_is_given_and_refuses_a_bad_reference(tmp_path, capsys):
    panels.main(["--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline-health.json"]
    assert "no domain panels" in capsys.readouterr().err
    panels.main(["--out", str(tmp_path), "--panels", DEMO_PANELS])
    business = (tmp_path / "business.json").read_text()
    assert '"title": "Orders: business view"' in business
    assert all(p.title in business for p in ORDERS.panels)
    assert all(p.query in (tmp_path / "pipeline-health.json").read_text() for p in HEALTH.panels)
    with pytest.raises(SystemExit) as failed:
        panels.main(["--out", str(tmp_path), "--panels", "examples.orders.schemas:SCHEMAS"])
    assert failed.value.code == 2
    assert "error: CQRS_PANELS / --panels=" in capsys.readouterr().err
