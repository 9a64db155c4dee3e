"""What an emulated NCP remembers: NVRAM (survives resets) and the running stack (does not)."""

from __future__ import annotations

import dataclasses

import bellows.types as t

from simulators.ncp.profile import CoordinatorProfile


@dataclasses.dataclass
class LinkKeyEntry:
    eui64: t.EUI64
    key: t.KeyData
    tx_counter: int = 0
    rx_counter: int = 0


@dataclasses.dataclass
class Nvram:
    """Tokens: kept across ASH resets, NCP resets and unplugging (the flash of the stick)."""

    factory_eui64: t.EUI64
    restored_eui64: t.EUI64 | None = None  # NV3 CREATOR_STACK_RESTORED_EUI64
    formed: bool = False
    parameters: t.EmberNetworkParameters | None = None
    security: t.EmberInitialSecurityState | None = None
    nwk_frame_counter: int = 0
    aps_frame_counter: int = 0
    key_table: list[LinkKeyEntry | None] = dataclasses.field(default_factory=list)
    # eui64 -> (nwk, node type): the child and address tables, merged (no mesh is emulated)
    neighbours: dict[t.EUI64, tuple[int, t.EmberNodeType]] = dataclasses.field(default_factory=dict)
    # The stack's binding table (NV in EmberZNet): (local endpoint, cluster, remote EUI-64, remote
    # endpoint) for each Bind_req a device sent naming this node as the source.
    bindings: list[tuple[int, int, t.EUI64, int]] = dataclasses.field(default_factory=list)

    @property
    def eui64(self) -> t.EUI64:
        return self.restored_eui64 if self.restored_eui64 is not None else self.factory_eui64

    def factory_reset(self, key_table_size: int) -> None:
        self.formed = False
        self.parameters = None
        self.security = None
        self.nwk_frame_counter = 0
        self.aps_frame_counter = 0
        self.key_table = [None] * key_table_size
        self.neighbours.clear()
        self.bindings.clear()


@dataclasses.dataclass
class StackState:
    """The running stack, lost on every reset."""

    network_up: bool = False
    config: dict[t.EzspConfigId, int] = dataclasses.field(default_factory=dict)
    values: dict[t.EzspValueId, bytes] = dataclasses.field(default_factory=dict)
    policies: dict[t.EzspPolicyId, int] = dataclasses.field(default_factory=dict)
    endpoints: dict[int, tuple[int, list[int], list[int]]] = dataclasses.field(
        default_factory=dict
    )  # endpoint -> (profile, input clusters, output clusters)
    transient_keys: dict[t.EUI64, t.KeyData] = dataclasses.field(default_factory=dict)
    permit_until: float = 0.0  # loop time until which joining is permitted
    multicast: dict[int, t.EmberMulticastTableEntry] = dataclasses.field(default_factory=dict)
    aps_sequence: int = 0

    @classmethod
    def booted(cls, profile: CoordinatorProfile) -> StackState:
        state = cls()
        state.config = {
            t.EzspConfigId.CONFIG_SECURITY_LEVEL: 5,
            t.EzspConfigId.CONFIG_STACK_PROFILE: 2,
            t.EzspConfigId.CONFIG_KEY_TABLE_SIZE: profile.key_table_size,
            t.EzspConfigId.CONFIG_ADDRESS_TABLE_SIZE: profile.address_table_size,
            t.EzspConfigId.CONFIG_MAX_END_DEVICE_CHILDREN: profile.child_table_size,
            t.EzspConfigId.CONFIG_MULTICAST_TABLE_SIZE: profile.multicast_table_size,
            t.EzspConfigId.CONFIG_BINDING_TABLE_SIZE: profile.binding_table_size,
            t.EzspConfigId.CONFIG_PACKET_BUFFER_COUNT: profile.packet_buffer_count,
        }
        return state

    def next_aps_sequence(self) -> int:
        self.aps_sequence = (self.aps_sequence + 1) % 256
        return self.aps_sequence
