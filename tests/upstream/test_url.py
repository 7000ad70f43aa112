"""Upstream URLs and the [upstream] section: every key, its bounds, one-line errors that name
the key and the value, and a password that never shows."""

from __future__ import annotations

import os
import tempfile
from unittest import mock

from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.upstream.url import (
    DEFAULT_POOL,
    DEFAULT_TIMEOUT,
    UpstreamConfig,
    UpstreamConfigError,
    parse_section,
    parse_url,
    redact,
)


class ParseTests(SynchronousTestCase):
    def test_plain_url_is_pass_through_with_defaults(self):
        c = parse_url("sip2://ils.example.org:6001")
        self.assertEqual((c.host, c.port, c.tls, c.profile, c.login), ("ils.example.org", 6001, False, "generic", None))
        self.assertFalse(c.pooled)
        self.assertEqual((c.pool, c.timeout, c.encoding, c.checksum, c.terminator),
                         (DEFAULT_POOL, DEFAULT_TIMEOUT, "utf-8", "bytes", "CR"))
        self.assertEqual(c.server, "ils.example.org:6001")

    def test_every_key(self):
        c = parse_url("sip2://10.0.0.5:6001?profile=koha&login=gw&password=s%26cret&location=DESK&institution=MAIN"
                      "&pool=8&timeout=2.5&encoding=latin-1&checksum=characters&terminator=crlf")
        self.assertEqual(c, UpstreamConfig(host="10.0.0.5", port=6001, profile="koha", login="gw", password="s&cret",
                                           location="DESK", institution="MAIN", pool=8, timeout=2.5,
                                           encoding="iso8859-1", checksum="characters", terminator="CRLF"))
        self.assertTrue(c.pooled)
        self.assertEqual(str(c), "sip2://10.0.0.5:6001?profile=koha&login=gw&password=****&location=DESK"
                                 "&institution=MAIN&pool=8&timeout=2.5&encoding=iso8859-1&checksum=characters"
                                 "&terminator=CRLF")
        self.assertEqual(parse_url(str(c).replace("****", "s%26cret")), c)

    def test_profile_gives_defaults_the_url_overrides(self):
        self.assertEqual(parse_url("sip2://h:1?profile=folio").encoding, "cp850")
        self.assertEqual(parse_url("sip2://h:1?profile=koha").terminator, "CRLF")
        self.assertEqual(parse_url("sip2://h:1?profile=koha&terminator=CR").terminator, "CR")
        self.assertEqual(parse_url("sip2://h:1?profile=FOLIO&encoding=utf-8").encoding, "utf-8")

    def test_ipv6_host_in_brackets(self):
        c = parse_url("sip2s://[::1]:6443")
        self.assertEqual((c.host, c.port, c.tls, c.server), ("::1", 6443, True, "[::1]:6443"))

    def test_tls_files(self):
        with tempfile.NamedTemporaryFile() as f:
            c = parse_url(f"sip2s://h:1?cafile={f.name}&certfile={f.name}&keyfile={f.name}")
            self.assertEqual((c.cafile, c.certfile, c.keyfile), (f.name, f.name, f.name))

    def test_str_and_repr_never_show_the_password(self):
        c = parse_url("sip2://h:1?login=gw&password=hunter2")
        self.assertNotIn("hunter2", str(c))
        self.assertNotIn("hunter2", repr(c))
        self.assertIn("password=****", str(c))
        self.assertEqual(c.password, "hunter2")


class PasswordFileTests(SynchronousTestCase):
    def write(self, data: bytes) -> str:
        fd, path = tempfile.mkstemp()
        os.write(fd, data)
        os.close(fd)
        self.addCleanup(os.unlink, path)
        return path

    def test_one_trailing_newline_is_removed(self):
        for data, password in ((b"pw\n", "pw"), (b"pw\r\n", "pw"), (b"pw\n\n", "pw\n"), (b"pw", "pw")):
            path = self.write(data)
            if "\n" in password:
                self.assertRaises(UpstreamConfigError, parse_url, f"sip2://h:1?login=gw&password_file={path}")
            else:
                self.assertEqual(parse_url(f"sip2://h:1?login=gw&password_file={path}").password, password)

    def test_systemd_credentials_directory(self):
        path = self.write(b"fromsystemd\n")
        directory, name = os.path.split(path)
        with mock.patch.dict(os.environ, {"CREDENTIALS_DIRECTORY": directory}):
            self.assertEqual(parse_url(f"sip2://h:1?login=gw&password_file=%25d/{name}").password, "fromsystemd")
        with mock.patch.dict(os.environ, {}, clear=True):
            e = self.assertRaises(UpstreamConfigError, parse_url, f"sip2://h:1?login=gw&password_file=%25d/{name}")
            self.assertIn("CREDENTIALS_DIRECTORY", str(e))

    def test_unreadable_and_empty_files_name_the_key_not_the_content(self):
        e = self.assertRaises(UpstreamConfigError, parse_url, "sip2://h:1?login=gw&password_file=/nonexistent/pw")
        self.assertIn("password_file='/nonexistent/pw' cannot be read", str(e))
        e = self.assertRaises(UpstreamConfigError, parse_url, f"sip2://h:1?login=gw&password_file={self.write(b'')}")
        self.assertIn("is empty", str(e))


class ErrorTests(SynchronousTestCase):
    def error(self, url: str, **kw) -> str:
        e = self.assertRaises(UpstreamConfigError, parse_url, url, **kw)
        text = str(e)
        self.assertEqual(text.count("\n"), 0)
        self.assertNotIn("hunter2", text)
        return text

    def test_errors_name_the_key_and_the_value(self):
        cases = {
            "sip2://h:1?pool=0": "pool='0' must be between 1 and 64",
            "sip2://h:1?pool=many": "pool='many' is not a whole number",
            "sip2://h:1?pool=65": "pool='65' must be between 1 and 64",
            "sip2://h:1?timeout=0": "timeout='0' must be between 0.1 and 300",
            "sip2://h:1?timeout=soon": "timeout='soon' is not a number",
            "sip2://h:1?profile=sierra": "profile='sierra' is not one of generic, koha",
            "sip2://h:1?encoding=utf-16": "encoding='utf-16' is not an ASCII-compatible",
            "sip2://h:1?encoding=klingon": "encoding='klingon'",
            "sip2://h:1?checksum=md5": "checksum='md5' must be one of bytes, characters, none",
            "sip2://h:1?terminator=LF": "terminator='LF' must be CR or CRLF",
            "sip2://h:1?colour=red": "colour: unknown key",
            "sip2://h:1?pool=1&pool=2": "pool is given twice",
            "sip2://h:1?login=": "login= is empty",
            "sip2://h:1?login=gw": "login='gw' needs password= or password_file=",
            "sip2://h:1?cafile=/etc/hosts": "cafile= is only for sip2s://",
            "sip2s://h:1?cafile=/nonexistent.pem": "cafile='/nonexistent.pem' cannot be read",
            "sip2s://h:1?keyfile=/etc/hosts": "keyfile= needs certfile=",
            "sip2://h:1?location=A|B": "location='A|B' must be at most 255",
            "http://h:1": "an upstream is sip2://HOST:PORT or sip2s://HOST:PORT",
            "sip2://h": "no port",
            "sip2://:6001": "no host",
            "sip2://h:99999": "not a valid URL",
            "sip2://h:1/path": "nothing may follow HOST:PORT",
            "sip2://h:1?pool": "'pool' is not KEY=VALUE",
        }
        for url, expected in cases.items():
            self.assertIn(expected, self.error(url), url)

    def test_password_never_in_errors(self):
        for url in ("sip2://h:1?login=gw&password=hunter2&pool=x",
                    "sip2://h:1?password=hunter2",
                    "sip2://h:1?login=gw&password=hun&ter2&pool=1",  # an unencoded & in the password
                    "sip2://h:1?login=gw&password=hunter2&password=hunter2",
                    "sip2://h:1?login=gw&PASS%57ORD=hunter2&colour=x",
                    "sip2://gw:hunter2@h:1",
                    "sip2://h:1?login=gw&password=hunter2|x"):
            self.error(url)

    def test_unencoded_ampersand_in_password_is_explained(self):
        self.assertIn("write '&' inside the password as %26",
                      self.error("sip2://h:1?login=gw&password=hun&ter2&pool=1"))

    def test_redact(self):
        self.assertEqual(redact("sip2://h:1?login=gw&password=x&pool=2"), "sip2://h:1?login=gw&password=****&pool=2")
        self.assertEqual(redact("sip2://u:p@h:1"), "sip2://****@h:1")


class SectionTests(SynchronousTestCase):
    def test_servers_in_order_with_defaults_the_urls_override(self):
        configs = parse_section({
            "servers": "sip2://a.example.org:6001, sip2://b.example.org:6001?profile=evergreen&pool=2\n"
                       "sip2s://c.example.org:6443",
            "profile": "koha", "pool": "6", "timeout": "3",
        })
        self.assertEqual([(c.host, c.profile, c.pool, c.timeout, c.tls) for c in configs], [
            ("a.example.org", "koha", 6, 3.0, False),
            ("b.example.org", "evergreen", 2, 3.0, False),
            ("c.example.org", "koha", 6, 3.0, True),
        ])

    def test_default_login_and_a_urls_own_password(self):
        a, b = parse_section({"servers": "sip2://a:1, sip2://b:1?password=other", "login": "gw",
                              "password": "shared"})
        self.assertEqual((a.login, a.password, b.login, b.password), ("gw", "shared", "gw", "other"))

    def test_section_errors(self):
        e = self.assertRaises(UpstreamConfigError, parse_section, {"profile": "koha"})
        self.assertIn("[upstream] servers: missing", str(e))
        e = self.assertRaises(UpstreamConfigError, parse_section, {"servers": "sip2://a:1", "colour": "red"})
        self.assertIn("[upstream] colour: unknown key", str(e))
        e = self.assertRaises(UpstreamConfigError, parse_section, {"servers": "sip2://a:1, sip2://a:1"})
        self.assertIn("a:1 is listed twice", str(e))
        e = self.assertRaises(UpstreamConfigError, parse_section, {"servers": "sip2://a:1", "pool": "0"})
        self.assertIn("[upstream] servers: sip2://a:1: pool='0'", str(e))
