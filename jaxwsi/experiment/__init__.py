"""Experiments on the tile trainer: validation plans over model folders, results logs, sweeps,
SMAC search, parallel trials, evaluation, heatmaps and HTML reports (`Project.train` and
friends call these)."""
