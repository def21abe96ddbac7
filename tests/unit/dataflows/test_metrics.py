"""A deployment that is gone leaves no series behind in a runtime's registry."""

from prometheus_client import CollectorRegistry

from dataflows.metrics import Metrics


def test_forget_drops_every_series_of_one_deployment_only():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for name in ("orders_v1", "orders_v2"):
        m = metrics.for_deployment("orders", int(name[-1]), name)
        m.on_consumed(0, 10, 10, 0)
        m.on_flush("orders", 5, 0.01)
        m.on_written([0])
        m.set_state("running")
        m.on_rejected("validate", "not_json")

    def deployments():
        return {
            s.labels.get("deployment") for family in registry.collect() for s in family.samples
        } - {None}

    assert deployments() == {"orders_v1", "orders_v2"}
    metrics.forget("orders_v1")
    assert deployments() == {"orders_v2"}
