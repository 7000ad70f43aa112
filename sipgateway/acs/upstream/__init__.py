"""Forwarding to a library system's own SIP2 server: the pieces an upstream ACS is built from.

* ``url``: ``sip2://`` and ``sip2s://`` URLs and the ``[upstream]`` section -> ``UpstreamConfig``
* ``profiles``: each library system's quirks, and the normalisation of its replies
* ``wire``: bytes on the wire per profile; ``show`` for logs
* ``protocol``: one connection, one request in flight, timeouts, out-of-step detection
* ``connection``: opening a connection, logging in, keep-alive, probes
* ``pool``: the connections to one server (pooled mode, and lazy for one device)
* ``dedicated``: a device's own connection (pass-through mode)
* ``breaker``: a circuit breaker per server and the failover group
* ``endpoints``: TCP or verified TLS client endpoints
* ``rules``: the rewrite rule language
* ``errors``: what failed, and whether the request may have been applied
"""
