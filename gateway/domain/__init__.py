"""The gateway's domain model: TDSPs and ESI IDs, parties, premises, agreements."""
