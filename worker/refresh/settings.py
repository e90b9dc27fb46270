"""Model refresh options (``SEG_REFRESH_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from shared.settings import section_config


class RefreshSettings(BaseSettings):
    """When the drift monitor refits, and how new clusters inherit old segment ids."""

    model_config = section_config("refresh")

    policy: Literal["alert-only", "refresh"] = Field(
        "alert-only",
        description="on an opened drift incident, only alert, or also refit the model (v+1) at once",
    )
    match_threshold: float = Field(
        1.5,
        gt=0,
        description="a new centroid keeps an old segment's id when the Hungarian matching pairs them at most "
        "this far apart (scaled units); farther, it gets a new id and the old id is retired for good",
    )
    n_init: int = Field(10, ge=1, description="k-means++ restarts of the refit")
    seed: int = 42
