"""The HTTP interface: REST API under /v1, consent pages, health, metrics. See `gateway.app`."""
