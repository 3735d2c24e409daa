"""Cost-benefit / ROI (`fraudtune roi`): run.py computes the analyses from a run's measured tokens and times (or the
seed's published inputs), render.py writes the summary and docs/COST_BENEFIT_ANALYSIS.md from the result."""

from fraudtune.roi.render import render_markdown, write_cost_benefit_doc
from fraudtune.roi.run import analyse, measured_inputs, roi, seed_inputs

__all__ = ["analyse", "measured_inputs", "render_markdown", "roi", "seed_inputs", "write_cost_benefit_doc"]
