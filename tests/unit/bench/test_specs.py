"""The benchmark's own specs parse: `make bench` runs outside the suite, so a spec that the
project's rules have moved away from would otherwise be found only at the next full run."""

from pathlib import Path

import pytest

import operators.builtin  # noqa: F401 - the specs name built-in filters
from dataflows.spec import load_pipeline

BENCH = Path(__file__).resolve().parents[3] / "bench"


@pytest.mark.parametrize("spec", sorted(BENCH.glob("*.yaml")), ids=lambda p: p.name)
def test_a_bench_spec_loads(spec: Path) -> None:
    assert load_pipeline(spec).projections
