"""Decode identical frames once.

A head-end broadcasting one PublishPrice to 100,000 meters hands every meter, and every device
behind them, the very same bytes; ``decode_frame`` is pure, so the decoded result can be shared.
Consumers treat ``DecodedFrame.fields`` as read-only (they copy before changing anything).
"""

from __future__ import annotations

from zigbee_se import DecodedFrame, decode_frame

_MAX = 4096
_cache: dict[tuple[int, bytes], DecodedFrame] = {}


def decode_shared(cluster_id: int, frame: bytes) -> DecodedFrame:
    """``zigbee_se.decode_frame`` with a small shared cache; raises DecodeError like it."""
    key = (cluster_id, frame)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    decoded = decode_frame(cluster_id, frame)
    if len(_cache) >= _MAX:
        _cache.clear()  # cheap and good enough: broadcasts are re-cached on their next use
    _cache[key] = decoded
    return decoded
