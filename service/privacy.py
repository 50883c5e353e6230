"""How personal data may appear in logs."""

from __future__ import annotations

import re

_PHONE = re.compile(r"^\+?[0-9]{2,20}$")
_KEEP_START = 5  # "+1650": country and area code, enough to tell regions apart
_KEEP_END = 4
_MIN_HIDDEN = 3


def phone_for_log(number: str, mode: str) -> str:
    """The number as MESSAGELOG_LOG_PHONE_NUMBERS allows: masked (+1650***3204) or in full.

    Anything that is not a phone number is never echoed: the field could carry any caller text.
    """
    number = number.strip()
    if not number:
        return ""
    if not _PHONE.match(number):
        return "invalid"
    if mode == "full":
        return number
    # Short numbers keep too little hidden under the usual mask.
    if len(number) < _KEEP_START + _KEEP_END + _MIN_HIDDEN:
        return "***" + number[-2:]
    return f"{number[:_KEEP_START]}***{number[-_KEEP_END:]}"
