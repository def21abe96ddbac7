"""Imports every built-in filter module, so their registrations are in `FILTERS`."""

from operators import (
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

BUILTIN_MODULES = (
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
