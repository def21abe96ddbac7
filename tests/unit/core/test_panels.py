"""A panel refuses what no dashboard can draw: a key that is no plain name, a kind neither the
built-in page nor Grafana draws, a query with placeholders other than `{views}`, a key twice."""

import pytest

from core.panels import KINDS, Panel, Panels

SQL = "SELECT status, count() AS n FROM {views}.orders GROUP BY status"


def test_a_panel_queries_the_views_it_is_given():
    panel = Panel("by_status", "By status", "barchart", SQL, ("status", "n"))
    assert panel.sql("q_1") == SQL.replace("{views}", "q_1")
    literal = Panel("braces", "Braces", "table", "SELECT map('a', 1){{'a'}} FROM {views}.t")
    assert literal.sql("query") == "SELECT map('a', 1){'a'} FROM query.t"


@pytest.mark.parametrize(
    ("key", "kind", "message"),
    [
        ("By Status", "barchart", "panel key 'By Status' must be lower-case letters"),
        ("", "barchart", "panel key '' must be"),
        ("x" * 65, "barchart", "(at most 64)"),
        ("pie", "pie", f"kind 'pie' is not one of {', '.join(KINDS)}"),
    ],
)
def test_keys_and_kinds_are_checked(key, kind, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Panel(key, "t", kind, SQL)


def test_a_query_with_other_placeholders_says_how_to_write_a_brace():
    panel = Panel("odd", "Odd", "table", "SELECT {views}.x FROM {database}.t")
    with pytest.raises(ValueError, match=r"panel 'odd'.*only the placeholder \{views\}.*\{\{"):
        panel.sql("query")


def test_a_dashboard_holds_each_key_once():
    one = Panel("a", "A", "table", SQL)
    with pytest.raises(ValueError, match=r"panel keys used twice: \['a'\]"):
        Panels("Twice", (one, Panel("b", "B", "table", SQL), one))
    assert Panels("Empty", ()).panels == ()
