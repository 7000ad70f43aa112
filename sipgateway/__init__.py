"""sipgateway: a SIP2 gateway for library self-check devices, built on Twisted."""

__version__ = "0.1.0"
