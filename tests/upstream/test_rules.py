"""The rewrite rule language: each action, tables, directions and codes, start-up errors that
quote the line, regular expressions that cannot blow up, and ``rewrite_raw``."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.upstream.rules import MAX_VALUES, RuleError, parse_rules, rewrite_raw
from sipgateway.sip2 import Message, checksum, parse

SORTER_RULES = """
# sort bins by destination and alert type
table bins ANNEX * -> 3
table bins MAIN 01 -> 4
table bins MAIN "" -> 5
table bins * * -> 9
reply 10 set CL from bins CT CV
reply 10,18 drop CH CS
reply * replace AF "(?i)please see staff" "Ask at the desk"
request * rename AO MAIN main
reply * rename AO main MAIN
"""

CHECKIN_REPLY = "101YNN20240506    103000AOmain|ABit1|AQMAIN|CTANNEX|CHx|CSQA 76|AFPlease SEE staff|"


class ActionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.rules = parse_rules(SORTER_RULES)

    def test_sort_bin_from_a_table_of_destination_and_alert_type(self):
        cases = {"CTANNEX|": "3", "CTMAIN|CV01|": "4", "CTMAIN|": "5", "CTMAIN|CV02|": "9", "": "9"}
        for fields, bin_ in cases.items():
            msg = parse(f"101YNN20240506    103000AOmain|ABit1|AQMAIN|{fields}".encode())
            self.assertEqual(self.rules.apply(msg).get("CL"), bin_, fields)

    def test_rewrite_raw_applies_every_rule_of_the_direction(self):
        self.assertEqual(rewrite_raw(self.rules, CHECKIN_REPLY),
                         "101YNN20240506    103000AOMAIN|ABit1|AQMAIN|CL3|CTANNEX|AFAsk at the desk|")
        request = "09N20240506    10300020240506    103000APDESK|AOMAIN|ABit1|"
        self.assertEqual(rewrite_raw(self.rules, request),
                         "09N20240506    10300020240506    103000APDESK|AOmain|ABit1|")

    def test_error_detection_is_kept_with_a_fresh_checksum(self):
        out = rewrite_raw(self.rules, "09N20240506    10300020240506    103000APDESK|AOMAIN|ABit1|AY3AZ0000")
        self.assertTrue(out.startswith("09N20240506    10300020240506    103000APDESK|AOmain|ABit1|AY3AZ"))
        self.assertEqual(out[-4:], checksum(out[:-4].encode()))

    def test_rules_only_touch_their_direction_and_codes(self):
        rules = parse_rules("reply 12 set AF hello\nrequest 11 drop AC\nreply * drop CK")
        msg = Message("10", {}, {"AB": "x", "CK": "001", "AC": "tp"})
        out = rules.apply(msg)
        self.assertEqual(out.fields, {"AB": "x", "AC": "tp"})
        self.assertEqual(msg.fields, {"AB": "x", "CK": "001", "AC": "tp"})  # the input is not changed
        self.assertEqual(rules.apply(Message("12", {}, {"AB": "x"})).fields, {"AB": "x", "AF": ["hello"]})

    def test_set_a_constant_and_from_a_fixed_field(self):
        rules = parse_rules('table alerts Y -> "see desk"\nreply 10 set AG from alerts alert\nreply 10 set CL 7')
        out = rules.apply(Message("10", {"alert": "Y"}, {"AB": "x"}))
        self.assertEqual((out.get("AG"), out.get("CL")), ("see desk", "7"))
        self.assertNotIn("AG", rules.apply(Message("10", {"alert": "N"}, {"AB": "x"})).fields)

    def test_replace_with_groups_on_every_value_and_cleaned_output(self):
        rules = parse_rules(r'reply * replace AF "Due (\d+)/(\d+)" "Due \2.\1"' + "\n" +
                            r'reply * replace AG "x" "|"')
        out = rules.apply(Message("12", {}, {"AF": ["Due 5/27", "Due 6/3"], "AG": ["x\r\n"]}))
        self.assertEqual(out.fields["AF"], ["Due 27.5", "Due 3.6"])
        self.assertEqual(out.fields["AG"], ["   "])

    def test_a_rule_looks_at_a_bounded_number_of_values(self):
        rules = parse_rules("reply * replace AF a b")
        out = rules.apply(Message("12", {}, {"AF": ["a"] * (MAX_VALUES + 2)}))
        self.assertEqual(out.fields["AF"], ["b"] * MAX_VALUES + ["a", "a"])

    def test_rename_is_exact(self):
        rules = parse_rules("request * rename AP DESK1 SORTER")
        self.assertEqual(rules.apply(Message("09", {}, {"AP": "DESK1"})).get("AP"), "SORTER")
        self.assertEqual(rules.apply(Message("09", {}, {"AP": "DESK10"})).get("AP"), "DESK10")


class ErrorTests(SynchronousTestCase):
    def error(self, text: str) -> str:
        e = self.assertRaises(RuleError, parse_rules, text, "[account:sorter] rules")
        self.assertTrue(str(e).startswith("[account:sorter] rules: "), str(e))
        return str(e)

    def test_bad_rules_quote_their_line(self):
        cases = {
            "reply 10 set CL": "'reply 10 set CL': set is: set TAG VALUE",
            "respond 10 drop CL": "a rule starts with request or reply",
            "reply 11 drop CL": "11 is not a reply message",
            "request 10 drop CL": "10 is not a request message",
            "reply 1x drop CL": "'1x' is not a SIP2 message code",
            "reply 10 drop cl": "'cl' is not a field tag",
            "reply 10 drop AZ": "AZ is the codec's",
            "reply 10 set CL from bins CT": "no table named bins",
            "table bins A -> 1\nreply 10 set CL from bins CT CV": "rows have 1 patterns, the rule gives 2 sources",
            "table bins A -> 1\ntable bins A B -> 2": "table bins has rows with 1 patterns; this one has 2",
            "table Bins A -> 1": "table name 'Bins'",
            "table bins A 1": "a table row is: table NAME PATTERN... -> VALUE",
            "reply * set CL from bins alert": "fixed field 'alert' needs explicit message codes",
            "table t A -> 1\nreply 12 set CL from t alert": "'alert' is not a fixed field of message 12",
            "reply 10 set CL 'a|b'": "must be at most 255 characters without '|'",
            "reply 10 explode CL": "unknown action 'explode'",
            'reply 10 replace AF "unclosed': "cannot split into words",
            "reply 10 replace AF ( x": "regular expression '('",
            r"reply 10 replace AF a \2": r"replacement '\\2'",
        }
        for text, expected in cases.items():
            self.assertIn(expected, self.error(text), text)

    def test_unsafe_regular_expressions_are_refused(self):
        for pattern in (r"(a+)+b", r"(a|aa)+b", r"(\w+\s?)*$", r"(x)\1", r"a*b*c*d", r"(?:ab)+"):
            self.assertIn("regular expression", self.error(f"reply * replace AF '{pattern}' x"), pattern)
        self.assertIn("longer than 200", self.error(f"reply * replace AF '{'a' * 201}' x"))

    def test_regular_expressions_see_at_most_255_characters_per_value(self):
        rules = parse_rules("reply * replace AF '^(a*)$' '<\\1>'")
        out = rules.apply(Message("12", {}, {"AF": ["a" * 1000]}))
        self.assertEqual(out.fields["AF"], ["<" + "a" * 254])

    def test_comments_and_blank_lines(self):
        rules = parse_rules("\n# a comment\n; another\n\nreply * drop CK\n")
        self.assertEqual(len(rules.rules), 1)
        self.assertFalse(parse_rules("# nothing"))
