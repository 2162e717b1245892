"""The library's entry points, one module per command (check, train, status, history, pause,
rollback, report, metrics, config, notify-failure): each wires what it needs, returns values and
never prints. cli.py and the Python API call these."""
