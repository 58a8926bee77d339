"""What each request cost and saved: cloud price tables, local TCO, and the `thrifty tco` model.

The gateway's meter needs only what is exported here::

    book = PriceBook.load(settings.prices)            # once, at startup
    usage = TokenUsage.from_openai(response["usage"])
    nanos = book.cost_nanos("deepseek-chat", usage, datetime.now(UTC))   # None: unpriced
    local_nanos = local_cost.cost_nanos(engine_seconds, fully_loaded=True)

Amounts are integer nano-units of the model's currency (`PriceBook.currency`); `money` formats
and converts them. The projection behind `thrifty tco` lives in `tco`, `score`, `report` and
`plot`, which the gateway never imports.
"""

from .local import LocalCost
from .money import NANOS, convert_nanos, format_nanos, parse_nanos, to_decimal, to_nanos
from .pricebook import PriceBook, Rates, Tariff
from .usage import TokenUsage

__all__ = [
    "NANOS",
    "LocalCost",
    "PriceBook",
    "Rates",
    "Tariff",
    "TokenUsage",
    "convert_nanos",
    "format_nanos",
    "parse_nanos",
    "to_decimal",
    "to_nanos",
]
