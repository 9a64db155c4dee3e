"""What the gateway answers (202) for a HAN request it accepted, a cancel included."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Accepted:
    request_id: int
    kind: str
    se_id: int | None
    targeted: int
    excluded: list[dict[str, str]] = field(default_factory=list)
    fanout: bool = False
    starts_at: datetime | None = None
    block_period_request_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"id": self.request_id, "kind": self.kind, "se_id": self.se_id,
               "targeted": self.targeted, "excluded": self.excluded,
               "fanout": "expanding" if self.fanout else None,
               "starts_at": self.starts_at.isoformat() if self.starts_at else None}
        if self.block_period_request_id is not None:
            out["block_period_request_id"] = self.block_period_request_id
        return out
