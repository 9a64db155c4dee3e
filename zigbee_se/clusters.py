"""Cluster ids and names used by the Smart Energy profile."""

from __future__ import annotations

import enum

from zigbee_se.errors import EncodeError

SE_PROFILE_ID = 0x0109
"""APS profile id for Smart Energy. SE frames never go out on Home Automation's 0x0104."""


class ClusterId(enum.IntEnum):
    TIME = 0x000A
    PRICE = 0x0700
    DRLC = 0x0701
    METERING = 0x0702
    MESSAGING = 0x0703


CLUSTER_NAMES: dict[str, ClusterId] = {
    "time": ClusterId.TIME,
    "price": ClusterId.PRICE,
    "drlc": ClusterId.DRLC,
    "demand_response_and_load_control": ClusterId.DRLC,
    "metering": ClusterId.METERING,
    "messaging": ClusterId.MESSAGING,
}


def resolve_cluster(cluster: int | str) -> int:
    """A cluster given as id (int, "0x0700", "1792") or name ("price") -> its 16-bit id."""
    if isinstance(cluster, bool):
        raise EncodeError("cluster", cluster, "a cluster name or 16-bit id")
    if isinstance(cluster, int):
        if 0 <= cluster <= 0xFFFF:
            return int(cluster)
        raise EncodeError("cluster", cluster, "a 16-bit cluster id (0..0xffff)")
    if not isinstance(cluster, str):  # untyped callers (JSON from `hangw se encode -`) get a typed error
        raise EncodeError("cluster", cluster, "a cluster name or 16-bit id")
    text = cluster.strip().lower()
    if text in CLUSTER_NAMES:
        return int(CLUSTER_NAMES[text])
    try:
        value = int(text, 0)
    except ValueError:
        raise EncodeError(
            "cluster", cluster, f"a cluster id or one of {', '.join(sorted(CLUSTER_NAMES))}"
        ) from None
    return resolve_cluster(value)


def cluster_name(cluster_id: int) -> str:
    try:
        return ClusterId(cluster_id).name.lower()
    except ValueError:
        return f"0x{cluster_id:04x}"


# SE 1.x device ids (the Simple Descriptor's device id on profile 0x0109) -> the names the HAN
# inventory gives them (the radio route's and the simulated meters' alike).
# As Texas Instruments' Z-Stack se.h (0x0500-0x0506) and zsmartsystems' ZigBeeDeviceType.java
# (0x0500-0x0508) define them; zigpy has no SE device ids.
SE_DEVICE_TYPES = {
    0x0500: "esi",
    0x0501: "meter",
    0x0502: "in_home_display",
    0x0503: "pct",
    0x0504: "load_control_device",
    0x0505: "smart_appliance",
    0x0506: "prepayment_terminal",
    0x0507: "physical_device",
    0x0508: "remote_communications_device",
}


def se_device_type_name(device_id: int) -> str:
    """`in_home_display` for 0x0502; `se_0x0509` for an id SE 1.x does not name."""
    return SE_DEVICE_TYPES.get(device_id, f"se_0x{device_id:04x}")
