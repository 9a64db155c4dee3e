"""ams_adapters."""
