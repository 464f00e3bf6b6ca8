"""Queue names: `generic`, or an ISO 3166-1 alpha-2 country code in upper case.

A submitter may name a country by code or by name, in any case (`it`, `IT`, `Italy`); the ISO
table comes from pycountry rather than a hand-kept list.
"""

from __future__ import annotations

import pycountry

from thugrq.config import GENERIC_QUEUE
from thugrq.exceptions import InvalidInput


def country_code(text: str) -> str:
    """The alpha-2 code of a country given by code or name, or InvalidInput."""
    cleaned = text.strip() if isinstance(text, str) else ""
    country = None
    if len(cleaned) == 2:
        country = pycountry.countries.get(alpha_2=cleaned.upper())
    if country is None and len(cleaned) > 2:
        wanted = cleaned.casefold()
        exact = [c for c in pycountry.countries if wanted in _names(c)]
        partial = [c for c in pycountry.countries if any(wanted in n for n in _names(c))]
        if exact or len(partial) == 1:
            country = (exact or partial)[0]
        elif partial:
            candidates = ", ".join(f"{c.name} ({c.alpha_2})" for c in partial[:5])
            raise InvalidInput(f"ambiguous country {text!r}: did you mean {candidates}?")
    if country is None:
        raise InvalidInput(
            f"unknown country {text!r}: give an ISO 3166-1 code such as IT or US, "
            "or a country name such as Italy"
        )
    return country.alpha_2


def queue_name(text: str) -> str:
    """`generic`, or the country queue for a code or name."""
    if isinstance(text, str) and text.strip().lower() == GENERIC_QUEUE:
        return GENERIC_QUEUE
    return country_code(text)


def _names(country) -> set[str]:
    names = {country.alpha_2, country.alpha_3, country.name}
    names |= {getattr(country, attr, "") for attr in ("official_name", "common_name")}
    return {name.casefold() for name in names if name}
