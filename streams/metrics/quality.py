"""Content quality: the scores ``quality_scoring`` gives, so a dashboard can show a
catalog's quality moving.

Counters, not a histogram: this project's histograms measure time (``*_seconds``).
The mean score over a window is ``increase(points{part="score"}) / increase(scores)``
summed over the bands; the share below 60 is the 0-19, 20-39 and 40-59 bands over all.
They count scorings, not products: a product scored twice (a re-run, a replay after a
crash) counts twice. A catalog's current quality per product is in the read model
(``task_outputs``, field ``quality_score``).
"""

from catalogflow.streams.metrics.base import counter

QUALITY_SCORES = counter(
    "catalogflow_quality_scores_total",
    "Products scored by quality_scoring, by action and band of the overall score "
    "(0-19, 20-39, 40-59, 60-79, 80-100).",
    "action",
    "band",
)
QUALITY_POINTS = counter(
    "catalogflow_quality_points_total",
    "Points given by quality_scoring, by action and part (score: the overall score); "
    "divided by the products scored, the mean.",
    "action",
    "part",
)
