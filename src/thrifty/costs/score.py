"""The weighted go/no-go score behind `thrifty tco`'s recommendation.

Three dimensions, each scored 0–10:

- **feasibility** — can we run a local model that meets the bar? (model quality on our own eval,
  team skills, power/cooling/rack space). The mean of the inputs the user gives.
- **economics** — does local or hybrid save money over the horizon? Computed from the TCO unless
  the user pins it: 5 at parity, one point per 10% saved (or lost) against all-cloud, clamped.
- **urgency** — how much does it matter now? (cost pressure, data that must stay on premises,
  vendor risk). The mean of the inputs the user gives.

The weights (30/40/30 by default) must sum to 1, so the total is on the same 0–10 scale.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Points = Annotated[float, Field(ge=0, le=10)]


class Weights(BaseModel):
    """How much each dimension counts; must sum to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feasibility: float = Field(default=0.3, ge=0, le=1, description="Technical feasibility.")
    economics: float = Field(default=0.4, ge=0, le=1, description="Savings against the cloud.")
    urgency: float = Field(default=0.3, ge=0, le=1, description="How pressing the move is.")

    @model_validator(mode="after")
    def _sum_to_one(self) -> Weights:
        total = self.feasibility + self.economics + self.urgency
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise ValueError(
                f"weights must sum to 1, got {total:g} (feasibility {self.feasibility:g} "
                f"+ economics {self.economics:g} + urgency {self.urgency:g})"
            )
        return self


class ScoreConfig(BaseModel):
    """Inputs of the score; each input is 0 (worst for going local) to 10 (best)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: Weights = Field(default_factory=Weights)
    feasibility: dict[str, Points] = Field(
        default_factory=lambda: {"local_model_quality": 5.0, "team_skills": 5.0},
        description="Named 0–10 inputs, averaged: e.g. local model quality, team skills.",
    )
    urgency: dict[str, Points] = Field(
        default_factory=lambda: {"cost_pressure": 5.0, "data_residency": 5.0},
        description="Named 0–10 inputs, averaged: e.g. cost pressure, data residency.",
    )
    economics: Points | None = Field(
        default=None, description="Pin the economics score; default: computed from the TCO."
    )
    go_at: Points = Field(default=7.0, description="Total at or above which to go local/hybrid.")
    pilot_at: Points = Field(default=5.0, description="Total at or above which to run a pilot.")

    @model_validator(mode="after")
    def _inputs(self) -> ScoreConfig:
        for name, inputs in (("feasibility", self.feasibility), ("urgency", self.urgency)):
            if not inputs:
                raise ValueError(f"score.{name} needs at least one input")
        if self.pilot_at > self.go_at:
            raise ValueError(f"pilot_at ({self.pilot_at}) is above go_at ({self.go_at})")
        return self


class Score(BaseModel):
    """Each dimension's 0–10 score and the weighted total."""

    feasibility: float
    economics: float
    urgency: float
    total: float
    verdict: str  # "go", "pilot" or "stay"


def economics_points(cloud_total: Decimal, best_other_total: Decimal) -> float:
    """5 at parity, +1 per 10% that the cheaper of local/hybrid saves against all-cloud, 0–10."""
    if cloud_total <= 0:
        return 0.0 if best_other_total > 0 else 5.0
    saving = float((cloud_total - best_other_total) / cloud_total)
    return min(10.0, max(0.0, 5.0 + 10.0 * saving))


def score(config: ScoreConfig, economics: float) -> Score:
    """Weigh the dimensions; ``economics`` is used unless the config pins it."""
    dims = {
        "feasibility": sum(config.feasibility.values()) / len(config.feasibility),
        "economics": economics if config.economics is None else config.economics,
        "urgency": sum(config.urgency.values()) / len(config.urgency),
    }
    weights = config.weights
    total = (
        weights.feasibility * dims["feasibility"]
        + weights.economics * dims["economics"]
        + weights.urgency * dims["urgency"]
    )
    verdict = "go" if total >= config.go_at else "pilot" if total >= config.pilot_at else "stay"
    return Score(**dims, total=total, verdict=verdict)
