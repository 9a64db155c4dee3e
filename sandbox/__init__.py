"""The simulated field as a product: `hangw demo`, `hangw sim-field`, `hangw sim headend|ncp`, and the
simulated routes (`routes.kind = "simulated"` / `"simulated_remote"`).

It sits above everything else: it may import `gateway`, `ams_adapters` and `simulators`, and nothing
in production (`gateway`, `ams_adapters`, `zigbee_se`) imports it. `hangw` finds its commands and
routes by name through the entry points in pyproject.toml (`hangw.commands`, `hangw.routes`; see
gateway/plugins.py). The import rules are import-linter contracts in pyproject.toml.
"""
