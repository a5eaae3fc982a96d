"""The model stage: backbones on the single classes (ST-GCN for skeletons, a TSN-style CNN for RGB
and flow), ImagineNet heads on their features, scoring on the composite videos, assessment.

Commands (`cprcoach model COMMAND`, or `python -m cprcoach.model COMMAND`): backbone, imagine,
join, late, seeds, summary, assess (also `cprcoach assess`).
"""
