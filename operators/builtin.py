"""Imports every built-in filter module, so their registrations are in `FILTERS`."""

from operators import (  # noqa: F401 - imported for their registrations
    dedupe,
    derive,
    forward,
    fx,
    order_state,
    redact,
    route,
    select,
    upcast,
    validate,
    windows,
)
