"""twistd plugin: ``twistd -n sipgateway [options]``. Logic lives in sipgateway.service."""

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IServiceMaker, IPlugin)
class _SIPGatewayServiceMaker:
    tapname = "sipgateway"
    description = "SIP2 gateway for library self-check devices (raw TCP, TLS, telnet, serial)"

    @property
    def options(self):
        from sipgateway.config import Options

        return Options

    def makeService(self, options):
        from sipgateway.service import make_service

        return make_service(options.config)


serviceMaker = _SIPGatewayServiceMaker()
