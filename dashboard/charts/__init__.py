"""What the charts draw (Vega-Lite specifications, as plain data, over the counts of
`dashboard.reads.charts`): a module per page, each chart a function; shapes from `shapes`,
colours from `palette` (colour-blind safe)."""
