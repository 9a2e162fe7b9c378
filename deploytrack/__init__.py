"""deploytrack: record which artifacts run where, linked to the evidence that names them."""

__version__ = "0.1.0"
