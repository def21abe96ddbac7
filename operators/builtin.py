"""Imports every built-in filter module, so their registrations are in `FILTERS`."""

from operators import order_state, validate

BUILTIN_MODULES = (order_state, validate)
