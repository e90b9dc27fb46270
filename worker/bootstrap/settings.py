"""Bootstrap options from ``SEG_BOOTSTRAP_*`` variables; command-line flags override them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from shared.settings import section_config


class BootstrapSettings(BaseSettings):
    """How the initial model is fitted and where it is written."""

    model_config = section_config("bootstrap")

    k: int | None = Field(None, ge=2, description="fixed number of segments; None = choose by silhouette")
    k_min: int = Field(3, ge=2)
    k_max: int = Field(8, ge=2)
    seed: int = 42
    n_init: int = Field(10, ge=1)
    silhouette_sample: int = Field(5000, ge=100, description="customers scored for the silhouette")
    model_file: Path = Path("out/model.json")
    batch_size: int = Field(500, ge=1, description="customers per seeding script call")

    @model_validator(mode="after")
    def _range_is_ordered(self) -> BootstrapSettings:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) is larger than k_max ({self.k_max})")
        return self

    @property
    def k_values(self) -> list[int]:
        return [self.k] if self.k is not None else list(range(self.k_min, self.k_max + 1))
