"""The local-radio route: zigpy + bellows on an EZSP coordinator, the gateway as SE ESI."""

from ams_adapters.radio.config import RadioConfig, RadioConfigError
from ams_adapters.radio.errors import CbkeNotSupported, CoordinatorUnavailable, RadioError
from ams_adapters.radio.events import (
    CbkeRequested,
    CoordinatorReachable,
    CoordinatorUnreachable,
    Delivery,
    DeliveryResult,
    DeviceAssociated,
    DeviceBound,
    DeviceFrame,
    DeviceJoined,
    DeviceJoinFailed,
    DeviceLeft,
    OutboundFrame,
    RadioEvent,
)
from ams_adapters.radio.session import CoordinatorSession

__all__ = [
    "CbkeNotSupported",
    "CbkeRequested",
    "CoordinatorReachable",
    "CoordinatorSession",
    "CoordinatorUnavailable",
    "CoordinatorUnreachable",
    "Delivery",
    "DeliveryResult",
    "DeviceAssociated",
    "DeviceBound",
    "DeviceFrame",
    "DeviceJoinFailed",
    "DeviceJoined",
    "DeviceLeft",
    "OutboundFrame",
    "RadioConfig",
    "RadioConfigError",
    "RadioError",
    "RadioEvent",
]
