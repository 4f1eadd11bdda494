"""What the charts draw (altair over the counts of `dashboard.reads.charts`): a module per
page, each chart a function; colours from `palette` (colour-blind safe)."""
