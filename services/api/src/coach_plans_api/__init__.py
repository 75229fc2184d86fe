"""Coach Plans API: stores coaches' daily plans and serves them over HTTP."""

__version__ = "2.0.0"
