"""Cost accounting settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thrifty.config._base import _Section
from thrifty.costs.local import LocalCost


class CostSettings(_Section):
    baseline_model: str = Field(
        "deepseek-v4-flash",
        description="Cloud model (as the upstream names it) whose price is the all-cloud baseline.",
    )
    cny_per_usd: float = Field(7.2, description="Exchange rate for CNY prices and reports.", gt=0)
    local_basis: Literal["marginal", "fully_loaded"] = Field(
        "fully_loaded",
        description="Local cost per request: power only, or power + depreciation + ops share.",
    )
    local: LocalCost = Field(
        default_factory=LocalCost, description="The local machine's cost model (TCO)."
    )
