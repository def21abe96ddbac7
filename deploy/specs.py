"""Each deployment's spec, parsed once. A record holds its spec as text (so a runtime
restarted tomorrow resumes the same deployment); parsing it resolves and builds every filter,
and the status, the supervisor, blue/green and the dashboard all need the result, every few
seconds for every live deployment. A record's spec never changes after it is created (a name
deployed again after an abort is a new creation, with a new `created_at`), so the parsed
pipeline is kept per (record name, `created_at`) until the deployment is gone.

A spec that came over the API is held to this process's allow-list when it is parsed, as at
every load before: the allow-list is fixed for the life of the process that holds the cache.
"""

from __future__ import annotations

import threading

from dataflows.spec import Pipeline, parse_pipeline
from deploy.model import GONE, Origin
from deploy.records import Record
from operators.code import AllowList


class Specs:
    def __init__(self, allowed: AllowList) -> None:
        #: what specs that came over the API may import
        self.allowed = allowed
        self._parsed: dict[tuple[str, int], tuple[str, Pipeline]] = {}
        self._lock = threading.Lock()

    def parse(self, spec_text: str, source: str, origin: Origin) -> Pipeline:
        """A spec not registered yet: checked (a spec from the API against the allow-list)
        before anything is registered or imported."""
        return parse_pipeline(
            spec_text, source, allowed=None if origin == Origin.LOCAL else self.allowed
        )

    def of(self, record: Record) -> Pipeline:
        """A registered deployment's pipeline: parsed at its first use, then kept (but not for
        a deployment that is gone, which only `status --all` reads)."""
        key = (record.name, record.created_at)
        with self._lock:
            found = self._parsed.get(key)
        if found is not None and found[0] == record.spec:
            return found[1]
        pipeline = self.parse(record.spec, record.source, record.origin)
        if record.created_at and record.stage not in GONE:
            with self._lock:
                self._parsed[key] = (record.spec, pipeline)
        return pipeline

    def forget(self, name: str) -> None:
        """The deployment is gone: its parsed spec goes too."""
        with self._lock:
            for key in [k for k in self._parsed if k[0] == name]:
                del self._parsed[key]
