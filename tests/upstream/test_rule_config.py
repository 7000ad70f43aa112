"""Rewrite rules in the config (``rules`` of ``[account:NAME]``), applied by ``UpstreamACS``
to what it forwards and to the library system's replies; ``[upstream] cached_answer_age``;
and ``sipgateway rules test`` with its exact output."""

from __future__ import annotations

import textwrap

import pytest
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipgateway import cli
from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.upstream.backend import UpstreamACS
from sipgateway.acs.upstream.errors import OutcomeUnknown
from sipgateway.acs.upstream.rules import parse_rules
from sipgateway.acs.upstream.url import parse_url
from sipgateway.config import ConfigError, load
from tests.upstream.fakes import Behaviour
from tests.upstream.test_backend import MAIN, T0, Upstreams

SORTER = """\
[upstream]
servers = sip2://127.0.0.1:6001?login=gw&password=secret
cached_answer_age = 60

[account:sorter]
deadline = 1000
rules =
    # sort bins by destination and alert type
    table bins ANNEX * -> 3
    table bins MAIN 01 -> 4
    table bins * * -> 9
    reply 10 set CL from bins CT CV
    reply 10 drop CH
    reply * replace AF "(?i)please see staff" "Ask at the desk"
    request * rename AO MAIN main
"""


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "gw.ini"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_an_accounts_rules_and_the_cached_answer_age_are_read(tmp_path) -> None:
    config = load(_write(tmp_path, SORTER))
    (sorter,) = config.accounts
    assert sorter.rules is not None and len(sorter.rules.rules) == 4
    assert sorter.deadline == 1.0
    assert config.cached_answer_age == 60.0
    assert load(_write(tmp_path, "[upstream]\nservers = sip2://127.0.0.1:6001\n")).cached_answer_age == 300.0


@pytest.mark.parametrize(("text", "error"), [
    ("[upstream]\nservers = sip2://h:1\n[account:s]\nrules = reply 10 set CL from bins CT\n",
     "[account:s] rules: 'reply 10 set CL from bins CT': no table named bins"),
    ("[upstream]\nservers = sip2://h:1\n[account:s]\nrules = reply 11 drop CH\n",
     "[account:s] rules: 'reply 11 drop CH': 11 is not a reply message (request rules change those)"),
    ("[upstream]\nservers = sip2://h:1\n[account:s]\nrules = reply * replace AF \"(ab)*\" x\n",
     "[account:s] rules: 'reply * replace AF \"(ab)*\" x': regular expression '(ab)*': a repeated part must be"),
    ("[account:s]\nrules = reply 10 drop CH\n",
     "[account:s] rules: rewrite rules apply to what is forwarded to a library system; give --acs"),
    ("[upstream]\nservers = sip2://h:1\ncached_answer_age = soon\n",
     "[upstream]: cached_answer_age='soon' is not a number"),
    ("[upstream]\nservers = sip2://h:1\ncached_answer_age = 90000\n",
     "[upstream]: cached_answer_age='90000' must be at most 86400 seconds"),
])
def test_a_bad_rule_or_age_is_an_error_naming_the_key(tmp_path, text: str, error: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(_write(tmp_path, text))
    assert str(e.value).startswith(error), str(e.value)


class ForwardedRuleTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.up = Upstreams(self.clock, Behaviour())
        rules = parse_rules(textwrap.dedent(SORTER.split("rules =\n")[1]))
        self.acs = UpstreamACS([parse_url("sip2://ils:6001?login=gw&password=secret")], self.clock,
                               endpoint_for=self.up.endpoint_for, rules={"sorter": rules})
        self.acs.startService()
        self.addCleanup(self.acs.stopService)
        self.up.flush()

    def checkin(self, terminal: m.Terminal) -> m.CheckinResult:
        d = self.acs.checkin(terminal, rq.CheckinRequest("it1"))
        self.up.flush()
        return self.successResultOf(d)

    def test_the_accounts_request_and_reply_rules_apply(self) -> None:
        sorter = m.Terminal(account="sorter", institution="MAIN", location="SORT")
        result = self.checkin(sorter)
        sent = self.up.servers[0].received[-1]
        self.assertEqual((sent.code, sent.get("AO")), ("09", "main"))   # renamed before forwarding
        self.assertEqual((result.destination_location, result.sort_bin), ("ANNEX", "3"))  # CL from CT

    def test_another_account_is_forwarded_unchanged(self) -> None:
        result = self.checkin(MAIN)
        self.assertEqual(self.up.servers[0].received[-1].get("AO"), "MAIN")
        self.assertIsNone(result.sort_bin)


def test_cached_answer_age_zero_never_answers_from_cache() -> None:
    clock = Clock()
    clock.advance(T0)
    up = Upstreams(clock, Behaviour())
    acs = UpstreamACS([parse_url("sip2://ils:6001?login=gw&password=secret&timeout=5")], clock,
                      endpoint_for=up.endpoint_for, cached_answer_age=0)
    acs.startService()
    up.flush()
    d = acs.item_information(MAIN, rq.ItemInformationRequest("it1"))
    up.flush()
    assert d.result.item_id == "it1"
    up.servers[0].behaviour.delay = 3.0
    late = acs.item_information(MAIN.until(clock.seconds() + 1), rq.ItemInformationRequest("it1"))
    up.flush()
    clock.advance(1.0)
    up.flush()
    failures: list = []
    late.addErrback(failures.append)
    assert len(failures) == 1 and failures[0].check(OutcomeUnknown)  # a read: not answered from cache
    clock.advance(3.0)
    up.flush()
    acs.stopService()


def test_rules_test_prints_a_reply_and_a_request_after_the_rules(tmp_path, capsys) -> None:
    path = _write(tmp_path, SORTER)
    assert cli.main(["rules", "test", "--config", path, "--account", "sorter",
                     "101YNN20240506    103000AOmain|ABit1|AQMAIN|CTANNEX|CHx|AFPlease SEE staff|"]) == 0
    assert cli.main(["rules", "test", "-c", path, "-a", "sorter",
                     "09N20240506    10300020240506    103000APDESK|AOMAIN|ABit1|AY1AZ0000"]) == 0
    out = capsys.readouterr()
    assert out.out == ("101YNN20240506    103000AOmain|ABit1|AQMAIN|CL3|CTANNEX|AFAsk at the desk|\n"
                       "09N20240506    10300020240506    103000APDESK|AOmain|ABit1|AY1AZF083\n")
    assert out.err == ""


def test_rules_test_says_what_is_wrong(tmp_path, capsys) -> None:
    path = _write(tmp_path, SORTER + "\n[account:plain]\ndeadline = 500\n")
    assert cli.main(["rules", "test", "-c", path, "-a", "nobody", "9900302.00"]) == 2
    assert cli.main(["rules", "test", "-c", path, "-a", "plain", "9900302.00"]) == 2
    assert cli.main(["rules", "test", "-c", path, "-a", "sorter", "10bad"]) == 1
    assert cli.main(["rules", "test", "-c", str(tmp_path / "none.ini"), "-a", "sorter", "9900302.00"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"sipgateway rules test: --account: {path!r} has no [account:nobody] section",
        f"sipgateway rules test: [account:plain] rules: none given in {path!r}",
        "sipgateway rules test: the message cannot be read: field ok at position 2: bad 0/1 in ok ('b')",
        f"sipgateway rules test: --config: file {str(tmp_path / 'none.ini')!r} does not exist",
    ]
