"""Queue names: `generic`, or a country by ISO code or name, in any case."""

from __future__ import annotations

import pytest

from thugrq.countries import queue_name
from thugrq.exceptions import InvalidInput


@pytest.mark.parametrize(
    "text, queue",
    [
        ("generic", "generic"), ("GENERIC", "generic"), ("it", "IT"), ("IT", "IT"),
        ("Italy", "IT"), ("italy", "IT"), ("ITA", "IT"), ("United States", "US"),
        ("Russia", "RU"), ("Viet Nam", "VN"),
    ],
)
def test_codes_and_names_map_to_the_alpha_2_queue(text, queue):
    assert queue_name(text) == queue


@pytest.mark.parametrize("text", ["Narnia", "XX", "", "Tex", "a"])
def test_unknown_countries_are_refused(text):
    with pytest.raises(InvalidInput, match="unknown country"):
        queue_name(text)


def test_ambiguous_names_list_the_candidates():
    with pytest.raises(InvalidInput, match=r"ambiguous country 'Korea'.*\(KR\)"):
        queue_name("Korea")
