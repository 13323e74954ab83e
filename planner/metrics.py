"""Prometheus metrics of the Planner's policy: where plans come from and how LIVE work is admitted."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PLANS = Counter("serendip_planner_plans_total", "Plans answered, by source (CACHE, LIVE, FALLBACK).", ["source"])
LIVE_DECISIONS = Counter(
    "serendip_planner_live_decisions_total",
    "Cache misses by LIVE admission decision: admitted, or the reason it was refused.",
    ["decision"],
)
LIVE_FALLBACKS = Counter(
    "serendip_planner_live_fallbacks_total",
    "Admitted LIVE attempts that ended in FALLBACK, by reason (deadline, Triton unavailable, no pixels).",
    ["reason"],
)
LIVE_IN_FLIGHT = Gauge("serendip_planner_live_in_flight", "LIVE runs under way (shared runs count once).")
LIVE_LATENCY_ESTIMATE = Gauge(
    "serendip_planner_live_latency_estimate_seconds", "The LIVE latency the admission control budgets for."
)
NEARLINE_QUEUE_DEPTH = Gauge("serendip_planner_nearline_queue_depth", "Cache misses waiting for nearline planning.")
NEARLINE_PLANNED = Counter(
    "serendip_planner_nearline_planned_total", "Items planned by nearline batches and written to the overlay."
)
OVERLAY_ITEMS = Gauge("serendip_planner_overlay_items", "Items the overlay plan table holds.")
CACHE_HIT_RATIO = Gauge(
    "serendip_planner_cache_hit_ratio", "Share of CACHE answers (batch table or overlay) over the last 1,000 plans."
)
