"""A read-only view of one model now: its data's fingerprint, what the log says, its live
version, the performance and drift checks, and the `status` rows built from them."""
