"""The pure core: reference parsing, manifests and drift decisions. No I/O, no clock."""
