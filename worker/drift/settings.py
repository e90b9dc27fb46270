"""Drift monitor options from ``SEG_DRIFT_*`` variables.

Windows are counted in events (invoices or assignments), not days: a count window
has the same statistical power in a quiet week and in the pre-Christmas rush, so one
calibrated threshold fits both, and detection delay is bounded in invoices.
Every window is stamped with the event-time span it covers.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from shared.settings import section_config


class DriftSettings(BaseSettings):
    """Windows, thresholds and incident rules of every drift monitor."""

    model_config = section_config("drift")

    # Per-invoice behaviour: order value (log), lines, days since previous purchase.
    invoice_window: int = Field(100, ge=20, description="invoices per evaluated window (and per reference chunk)")
    invoice_step: int = Field(5, ge=1, description="evaluate every this many invoices (sliding window)")
    min_events: int = Field(30, ge=5, description="a statistic with fewer values in the window is not evaluated")
    # Each family runs several checks (3 statistics × PSI and Wasserstein) and their nulls have
    # heavier tails than a normal: harness/drift.py measured ~2 false incidents per 90 days at
    # 3σ (seeds 1-5). No-drift controls, seeds 100-119 (smoothed window PSI, close_after 60): 0.83
    # at 4σ, 0.63 at 4.25σ, 0.40 at 4.5σ (100-109), where the median delay of a 1σ shift grows from 52 to 54
    # to 58 invoices (goal ≤ 60): 4.25σ.
    threshold_sigmas: float = Field(4.25, gt=0, description="threshold = mean + this many σ over the null chunks")
    psi_bins: int = Field(10, ge=3, description="quantile bins of the reference (the snapshot uses deciles)")
    simulated_chunks: int = Field(200, ge=20, description="null chunks drawn from the snapshot bins without raw values")
    seed: int = 0

    # Segment structure: shares, transitions, distance of updated customers.
    segment_window: int = Field(300, ge=50, description="assignments per evaluated window")
    segment_step: int = Field(30, ge=1, description="evaluate every this many assignments")
    calibration_windows: int = Field(6, ge=3, description="first stream windows that calibrate the segment family")
    transition_z: float = Field(
        5.0, gt=0, description="|z| of a transition rate vs the calibration windows that alerts"
    )
    min_segment_size: int = Field(20, ge=1, description="a transition A→B is scored when A has this many updates")

    # Customer activity: do loyal customers keep their pace (churn)? Evaluated once per event day.
    # Defaults chosen on the no-drift controls and churn replays of harness/drift.py with seeds
    # 100-115 (not the seeds it reports): 2.5σ gave 0.03 false incidents per 90 days and found
    # every churn wave within 24 days; 2σ opened 4x as many false incidents, 3σ missed waves.
    activity_min_invoices: int = Field(
        3, ge=1, description="invoices in the history window that make a customer loyal (rolling, not a fixed list)"
    )
    activity_history_days: int = Field(60, ge=7, description="event days before the recent window that set each pace")
    activity_window_days: int = Field(
        14, ge=1, description="recent event days whose invoices are compared with the expected pace"
    )
    activity_min_customers: int = Field(30, ge=1, description="a day with fewer loyal customers is not evaluated")
    activity_sigmas: float = Field(
        2.5, gt=0, description="alert at this z of the shortfall vs its day-bootstrap null (one-sided: fewer invoices)"
    )
    # 3 recent windows, as close_after is 3 invoice windows. The shortfall fades while a wave goes
    # on (the customers who left stop counting as loyal once their history empties): closing after
    # one window (14) re-opened a churn incident mid-episode on seeds 105 and 37; 42 did not.
    activity_close_after: int = Field(
        42, ge=1, description="daily evaluations below close_ratio that close an activity incident (3 recent windows)"
    )
    activity_null_replays: int = Field(20, ge=3, description="day-bootstrap replays of the reference that calibrate")
    activity_null_days: int = Field(180, ge=30, description="evaluated days per null replay")

    # Fast tier: ADWIN on standardised signals; bumps severity, never opens.
    adwin_delta: float = Field(0.002, gt=0, lt=1)
    adwin_memory: int = Field(4000, ge=100, description="values kept to rebuild ADWIN exactly after a restart")
    adwin_bump_evaluations: int = Field(10, ge=1, description="a detection bumps severity for this many evaluations")

    # Incidents.
    open_after: int = Field(4, ge=1, description="consecutive evaluations above threshold that open an incident")
    # 60 invoice evaluations = 3 whole windows (300 invoices) below the closing level. At 10 (half a
    # window, still overlapping the exceedance) a lasting mixture hovering at the threshold (a new
    # high-value cohort) split into 3-9 incidents per episode in harness/drift.py; at 60, one.
    # In the segment family (step 30 of 300 assignments) the same 60 evaluations are 6 windows.
    close_after: int = Field(
        60, ge=1, description="consecutive evaluations below close_ratio that close an invoice or segment incident"
    )
    # One drift episode is one incident. A family that opens while another family's incident is open
    # joins it; one that opens within this many event days after the incident closed re-opens it.
    # harness/drift.py before the ledger: a churn wave opened one activity and one invoice
    # incident; a cohort episode closed and re-opened 2 days later. The activity family judges a
    # 14-day window, so it confirms a churn wave up to two weeks after the invoice family saw the
    # mix change and may already have closed: at 7 days a churn wave of seed 31 (tuning seeds 20-39)
    # was split in two (invoice closed day 67.7, activity opened day 81.0). One activity window: 14.
    reopen_window_days: float = Field(
        14.0, ge=0, description="event days after an incident closed in which a family opening re-opens it (same id)"
    )
    close_ratio: float = Field(0.7, gt=0, le=1, description="hysteresis: closing level as a share of the threshold")
    critical_ratio: float = Field(2.0, gt=1, description="value/threshold from which severity is critical")
    update_every: int = Field(
        20, ge=1, description="an open incident sends an update at least this often (evaluations)"
    )
    update_min_gap: int = Field(3, ge=1, description="a severity change is sent once this many evaluations passed")

    @model_validator(mode="after")
    def _steps_fit_windows(self) -> DriftSettings:
        if self.invoice_step > self.invoice_window or self.segment_step > self.segment_window:
            raise ValueError("a step must not exceed its window (invoice_step, segment_step)")
        return self
