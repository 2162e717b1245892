"""The bottom layer, the process's plumbing: named errors and error types, the release version,
atomic writes, file locks, crash points for the tests, secrets and logging set-up. Imports
nothing of retrainctl."""
