"""Results of services: frozen, plain data. Field names are the documented JSON names.

Times are integer microseconds since the epoch (UTC); output turns them into RFC 3339.
One module per area, and this package imports none of them: defining a frozen dataclass
costs ~0.5 ms, so a command defines only the views it returns. The views of the hot
commands (`deployment record`, `deployment list`, `status`: deployments.py, lifecycle.py)
are NamedTuples, ~0.1 ms each; `cli.output.jsonable` prints both kinds alike.
"""
