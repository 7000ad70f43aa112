"""Endpoint string parsers for twistd and serverFromString: ``tls:`` (client certificates;
also ``siptls:``, since recent Twisted ships a ``tls:`` server parser that shadows ours) and
``serial:`` (an RS-232 line). The classes live in sipgateway.transports."""

from sipgateway.transports.serial import SerialEndpointParser
from sipgateway.transports.tls import TLSEndpointParser

tlsEndpointParser = TLSEndpointParser("tls")
siptlsEndpointParser = TLSEndpointParser("siptls")
serialEndpointParser = SerialEndpointParser()
