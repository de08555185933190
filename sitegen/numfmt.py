"""Numbers for reading: thousands separators and a precision that suits the size.

Pages show rounded values; the data downloads keep the exact ones. One function
so that every table, tile and chart label rounds the same way.
"""

from __future__ import annotations

import math


def readable(value: float | int | None, digits: int = 3, none: str = "–") -> str:
    """``value`` with about ``digits`` significant digits, never fewer than the integer part.

    10726.857838 -> "10,727"; 94.6123 -> "94.6"; 0.31347 -> "0.313"; 0.0004 -> "0.0004".
    """
    if value is None:
        return none
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
