"""Wire formats of the three head-end transports, pure and synchronous (no I/O).

The adapters and the head-end emulators (simulators/headends) both build on these modules, so the
emulator speaks exactly the bytes its adapter speaks; the emulators also check every message
strictly and refuse one that breaks the format (``WireError``)."""
