"""Checks that tell a real identifier from a number of the same length.

Each validator takes the digit string of a candidate and returns a :class:`Check`: a verdict
(``valid``, ``plausible`` or ``invalid``) and the reason, which ends up on the finding.
Recogniser YAML names validators by the keys of :data:`VALIDATORS`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Literal, NamedTuple

Verdict = Literal["valid", "plausible", "invalid"]


class Check(NamedTuple):
    verdict: Verdict
    reason: str


# GB/T 2260 province-level codes (first two digits of a resident ID).
_CN_PROVINCES = {
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82", "83", "91",
}  # fmt: skip
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def cn_id_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def _valid_date(yyyymmdd: str) -> bool:
    try:
        day = _dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return _dt.date(1900, 1, 1) <= day <= _dt.date.today()


def cn_resident_id(digits: str) -> Check:
    """18-digit (check digit) or 15-digit (old style, no check digit) resident ID."""
    digits = digits.upper()
    if len(digits) == 18:
        region_ok = digits[:2] in _CN_PROVINCES
        date_ok = _valid_date(digits[6:14])
        if digits[:17].isdigit() and cn_id_check_digit(digits[:17]) == digits[17]:
            return Check("valid", "18 digits with valid check digit")
        if region_ok and date_ok:
            return Check("plausible", "18 digits, region and birth date valid, check digit wrong")
        return Check("invalid", "18 digits, check digit, region or birth date wrong")
    if len(digits) == 15 and digits.isdigit():
        if digits[:2] in _CN_PROVINCES and _valid_date("19" + digits[6:12]):
            return Check("valid", "15 digits (old style), region and birth date valid")
        return Check("invalid", "15 digits, region or birth date wrong")
    return Check("invalid", f"{len(digits)} digits is not a resident ID length")


def luhn_ok(digits: str) -> bool:
    """Luhn (mod 10) checksum of a card number."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _known_issuer(digits: str) -> bool:
    # Visa 4, Mastercard 51-55 and 2221-2720, Amex 34/37, JCB 35, UnionPay 62,
    # Discover 6011/65, Chinese domestic debit 9 (e.g. 95599).
    if digits[0] in "469":
        return True
    if digits[:2] in {"34", "35", "37", "51", "52", "53", "54", "55"}:
        return True
    return 2221 <= int(digits[:4]) <= 2720


def payment_card(digits: str) -> Check:
    """13-19 digits, Luhn checksum and issuer prefix."""
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return Check("invalid", "not 13-19 digits")
    if luhn_ok(digits):
        if _known_issuer(digits):
            return Check("valid", f"{len(digits)} digits, Luhn valid, issuer prefix {digits[:2]}")
        return Check("plausible", f"{len(digits)} digits, Luhn valid, unknown issuer prefix")
    return Check("invalid", f"{len(digits)} digits, Luhn checksum fails")


def us_ssn(digits: str) -> Check:
    """Area 001-899 except 666, group 01-99, serial 0001-9999."""
    if len(digits) != 9 or not digits.isdigit():
        return Check("invalid", "not 9 digits")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area == "000" or area == "666" or area[0] == "9":
        return Check("invalid", f"area {area} is never issued")
    if group == "00" or serial == "0000":
        return Check("invalid", "group 00 or serial 0000 is never issued")
    return Check("valid", f"area {area}, group {group}, serial {serial} follow SSA rules")


def us_phone(digits: str) -> Check:
    """NANP number: area and exchange codes start 2-9 and are not N11 service codes."""
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10:
        return Check("invalid", "not 10 digits")
    area, exchange = digits[:3], digits[3:6]
    if area[0] in "01" or exchange[0] in "01":
        return Check("invalid", "area or exchange code starts with 0 or 1")
    if area[1:] == "11" or exchange[1:] == "11":
        return Check("invalid", "N11 service code")
    if area in {"800", "833", "844", "855", "866", "877", "888"}:
        return Check("plausible", f"toll-free area code {area}")
    return Check("valid", f"NANP area {area}, exchange {exchange}")


def cn_mobile(digits: str) -> Check:
    """Mainland mobile number, 1[3-9] and 11 digits, optional 86 country code."""
    core = digits[2:] if len(digits) == 13 and digits.startswith("86") else digits
    core = core[4:] if len(digits) == 15 and digits.startswith("0086") else core
    if len(core) == 11 and core[0] == "1" and core[1] in "3456789":
        return Check("valid", f"11-digit mobile number, prefix {core[:3]}")
    return Check("invalid", "not an 11-digit mobile number")


def cn_landline(digits: str) -> Check:
    """Area code (010, 02x, 0xxx) and a 7-8 digit local number starting 2-9."""
    if digits.startswith(("010", "02")):
        local = digits[3:]
    elif digits.startswith("0"):
        local = digits[4:]
    else:
        return Check("invalid", "no area code")
    if len(local) in (7, 8) and local[0] in "23456789":
        return Check(
            "valid",
            f"area code {digits[: len(digits) - len(local)]}, {len(local)}-digit local number",
        )
    return Check("invalid", "local number is not 7-8 digits starting 2-9")


VALIDATORS: dict[str, Callable[[str], Check]] = {
    "cn_resident_id": cn_resident_id,
    "payment_card": payment_card,
    "us_ssn": us_ssn,
    "us_phone": us_phone,
    "cn_mobile": cn_mobile,
    "cn_landline": cn_landline,
}
