"""The orders demo: orders placed, paid, shipped or cancelled, keyed by `order_id`.

- `schemas`: the command types and their data (`examples.orders.schemas:SCHEMAS` for `validate`)
- `order_state`: the `order_state` filter and its projector `order_rows`; a spec loads them with
  `modules: [examples.orders.order_state]`, as it would a user's own filters
- `dashboard`: its panels (`examples.orders.dashboard:PANELS` for `--panels` / CQRS_PANELS)
- `generator`: a deterministic load of order commands (`cqrs demo`, `cqrs produce`, the tests)
- `specs/`: the orders pipeline, v1 and v2 (`make demo` runs v1)

Importing the package registers nothing: only a spec that names the filters' module does.
"""

from pathlib import Path

SPECS = Path(__file__).parent / "specs"
