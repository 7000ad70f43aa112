"""One tokenizer of endpoint strings, for the config (our keys taken out, the rest joined
again) and for the endpoints (arguments and keywords): it splits as Twisted does."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.internet.endpoints import _parse

from sipgateway.transports.endpointstrings import split_description, split_endpoint

descriptions = st.text(alphabet=":=\\ab", max_size=24)


@given(descriptions)
def test_arguments_and_keywords_are_twisteds(description: str) -> None:
    try:
        expected = _parse(description)
    except RuntimeError:  # Twisted's tokenizer fails on a trailing backslash
        assume(False)
    assert split_description(description) == expected


@given(descriptions)
def test_parts_join_again_into_the_same_endpoint(description: str) -> None:
    trailing = len(description) - len(description.rstrip("\\"))
    assume(trailing % 2 == 0)  # a lone trailing backslash escapes nothing and is dropped
    parts = split_endpoint(description)
    assert split_description(":".join(parts)) == split_description(description)
