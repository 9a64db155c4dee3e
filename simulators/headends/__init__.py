"""TDSP head-end emulators: one per transport, each serving a ``simulators.field.SimField`` on a
RealClock and speaking exactly its adapter's protocol (docs/adapter-author.md).

They import the pure wire formats of ``ams_adapters.wire`` (no I/O, no adapter logic) so the bytes
are the adapters' bytes; production code never imports this package."""
