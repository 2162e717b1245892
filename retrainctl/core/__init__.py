"""The pure core: typed records and enums, the decision (which triggers fire, what to do, the
promotion gate), the folds of the state log and the quality statistics. Values in, values out:
no files, no clock, no ML imports at module level."""
