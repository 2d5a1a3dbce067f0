"""The service's Prometheus metrics (prometheus_client), on a registry of its own.

(A first version: the registry and the exposition; the instruments come with the metrics work.)
"""
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)


def exposition(metrics):
    """(body bytes, content type) of the text exposition format."""
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST
