"""Imports every built-in filter module, so their registrations are in `FILTERS`; lists them."""

from operators import (  # noqa: F401 - imported for their registrations
    dedupe,
    derive,
    forward,
    fx,
    redact,
    route,
    select,
    upcast,
    validate,
    windows,
)
from operators.registry import FILTERS, FilterDoc


def list_filters() -> list[FilterDoc]:
    """Every registered filter (built-in, and those of modules imported so far) with its typed
    parameters and docs: what `cqrs filters` prints."""
    return FILTERS.describe()
