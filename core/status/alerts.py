"""The one place that says what is wrong with the cluster now: unhealthy backends, offline nodes, models
nobody can serve. The admin banner and the public /status both read it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.models import BackendStatus, Node, NodeStatus
from core.registry.view import RegistryView


@dataclass(frozen=True, slots=True)
class Alert:
    severity: str  # warning | critical
    kind: str  # backend_unhealthy | node_offline | no_healthy_backend
    subject: str  # the backend's or node's name
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cluster_alerts(view: RegistryView, nodes: list[Node]) -> list[Alert]:
    alerts = [Alert('critical', 'node_offline', node.name,
                    f'node {node.name} is offline: {node.last_error or "its sidecar does not answer"}')
              for node in nodes if node.status == NodeStatus.offline]
    for backend in view.backends:
        if backend.status == BackendStatus.unhealthy:
            alerts.append(Alert('warning', 'backend_unhealthy', backend.name,
                                f'backend {backend.name} fails its health checks'))
    if view.backends and not any(backend.healthy for backend in view.backends):
        alerts.append(Alert('critical', 'no_healthy_backend', 'cluster', 'no backend is taking requests'))
    return alerts
