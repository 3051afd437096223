"""tagwatch: a registry tag-drift monitor.

Follows image tags and pinned digests through the registry HTTP API, keeps every digest a tag
has had in SQLite, alerts through apprise and exports Prometheus metrics.
"""

__version__ = "0.1.0"
