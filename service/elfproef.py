"""The 11-proef for RSIN and BSN (the same rule for both, as the standard's reference applies it)."""
from __future__ import annotations

ONLY_DIGITS = ("only-digits", "Waarde moet numeriek zijn.")
INVALID_LENGTH = ("invalid-length", "RSIN moet 9 tekens lang zijn.")
INVALID = ("invalid", "Onjuist RSIN nummer.")
WEGINGEN = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def elfproef_fout(waarde: str) -> tuple[str, str] | None:
    """The first failing check as (code, reason), or None for a valid RSIN/BSN."""
    if not (waarde.isascii() and waarde.isdigit()):
        return ONLY_DIGITS
    if len(waarde) != 9:
        return INVALID_LENGTH
    if sum(int(c) * w for c, w in zip(waarde, WEGINGEN)) % 11 != 0:
        return INVALID
    return None
