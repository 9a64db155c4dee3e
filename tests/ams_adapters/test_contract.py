"""The route contract refuses operations no route may accept, naming field, value and limit."""

from __future__ import annotations

import pytest

from ams_adapters.contract import (
    ContractError,
    ProvisioningKind,
    ProvisioningRequest,
    Target,
    TargetKind,
)

ESI = "10443720000000001"
EUI = "00:0d:6f:00:0a:bc:de:f0"


def test_provision_device_needs_a_16_byte_key_and_a_1_to_30_day_window() -> None:
    ok = ProvisioningRequest("r1", ESI, ProvisioningKind.PROVISION_DEVICE, eui64=EUI, link_key=bytes(16),
                             join_window_s=30 * 86400)
    assert ok.join_window_s == 2592000
    with pytest.raises(ContractError) as info:
        ProvisioningRequest("r1", ESI, ProvisioningKind.PROVISION_DEVICE, eui64=EUI, link_key=bytes(16),
                            join_window_s=31 * 86400)
    assert info.value.field == "join_window_s" and "30 days" in info.value.limit
    with pytest.raises(ContractError) as info:
        ProvisioningRequest("r1", ESI, ProvisioningKind.PROVISION_DEVICE, eui64=EUI, link_key=bytes(15),
                            join_window_s=86400)
    assert info.value.field == "link_key"
    with pytest.raises(ContractError) as info:
        ProvisioningRequest("r1", ESI, ProvisioningKind.DELETE_DEVICE)
    assert info.value.field == "eui64"
    assert ProvisioningRequest("r2", ESI, ProvisioningKind.CLEAR_DEVICES).eui64 is None


def test_a_device_target_names_its_device_and_only_it_does() -> None:
    assert Target(TargetKind.DEVICE, EUI).eui64 == EUI
    with pytest.raises(ContractError):
        Target(TargetKind.DEVICE)
    with pytest.raises(ContractError):
        Target(TargetKind.CAPABLE_DEVICES, EUI)
