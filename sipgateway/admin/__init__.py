"""The admin listener (``--admin ENDPOINT``, ``[admin] listen``): health, readiness,
Prometheus metrics and the live sessions over HTTP, for operations staff and their
monitoring.  Imported only when it is configured (twisted.web, prometheus_client)."""

from sipgateway.admin.service import admin_service

__all__ = ["admin_service"]
