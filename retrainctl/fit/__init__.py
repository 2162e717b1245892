"""Where fits run: the training task itself (a plain function that can run anywhere), the
supervised child process, and the executors (local processes, a Dask cluster, a fake for tests)."""
