"""The upstream servers' figures for the admin listener's ``/metrics``, read from their
circuit breakers (breaker.py) when scraped: nothing is counted on the request path."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sipgateway.acs.upstream.breaker import FailoverGroup


class UpstreamCollector:
    def __init__(self, group: FailoverGroup) -> None:
        self.group = group

    def collect(self) -> Iterator[Metric]:
        members = self.group.members
        up = GaugeMetricFamily("sipgateway_upstream_up", "1 while a library system server (--acs, by host:port) is "
                               "in service, 0 while its circuit breaker has taken it out", labels=("server",))
        failures = GaugeMetricFamily("sipgateway_upstream_failures", "Failures in a row of a library system server "
                                     "(connections, logins, timeouts, bad replies); at its threshold the breaker opens",
                                     labels=("server",))
        opened = CounterMetricFamily("sipgateway_upstream_breaker_open", "Times a library system server was taken "
                                     "out of service (its circuit breaker opened) since start-up", labels=("server",))
        for member in members:
            up.add_metric((member.name,), int(member.breaker.closed))
            failures.add_metric((member.name,), member.breaker.failures)
            opened.add_metric((member.name,), member.breaker.opened)
        yield up
        yield failures
        yield opened
