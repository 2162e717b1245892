"""One training attempt from claim to record: claim under the model's lock, fit on the executor,
gate, save, track, promote and record; settling decisions that train nothing; recovering
attempts whose process died."""
