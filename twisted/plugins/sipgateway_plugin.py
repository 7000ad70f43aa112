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
        from sipgateway.privileges import twistd_user
        from sipgateway.service import StartupError, make_service
        from sipgateway.transports.listening import check_listeners

        try:
            service = make_service(options.config, run_as=twistd_user(options), source=options.source)
            check_listeners(service)  # before twistd daemonizes: a port in use is this one line too
            return service
        except StartupError as e:  # a clear one-line error, not a traceback
            raise SystemExit(f"sipgateway: {e}") from None


serviceMaker = _SIPGatewayServiceMaker()
