"""Configuration: an ini file plus the command line, validated into one ``Config``.

``load`` reads it (load.py); each kind of section has its module (listeners.py,
accounts.py); single values are checked in values.py; twistd's options are in options.py.
Every bad value is an error that names the key (or option), the value and the fix.
"""

from sipgateway.config.accounts import AccountConfig
from sipgateway.config.listeners import (
           DEFAULT_LISTENERS,
           LISTENER_KEYS,
           ListenerConfig,
           listener_settings,
           parse_listen,
)
from sipgateway.config.load import DEFAULT_DATABASE, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PER_ADDRESS, Config, load
from sipgateway.config.options import Options
from sipgateway.config.values import ConfigError, check_encoding, check_error_detection, check_terminator
from sipgateway.transports.endpointstrings import split_endpoint

__all__ = ["DEFAULT_DATABASE", "DEFAULT_LISTENERS", "DEFAULT_MAX_CONNECTIONS", "DEFAULT_MAX_PER_ADDRESS",
           "LISTENER_KEYS", "AccountConfig", "Config", "ConfigError", "ListenerConfig", "Options",
           "check_encoding", "check_error_detection", "check_terminator", "listener_settings", "load",
           "parse_listen", "split_endpoint"]
