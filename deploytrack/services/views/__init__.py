"""Results of services: frozen, plain data. Field names are the documented JSON names.

Times are integer microseconds since the epoch (UTC); output turns them into RFC 3339.
One module per area, and this package imports none of them: defining a frozen dataclass
costs ~0.7 ms, so a command defines only the views it returns.
"""
