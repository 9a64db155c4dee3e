"""Declarative definitions of the SE cluster commands, one module per cluster."""
