# mypy: disable-error-code="no-untyped-call"
# (zigpy's ZDO types and (de)serializers carry no annotations.)
"""SE registration after joining, the ZDO part (SE_BEHAVIOUR.md §6, Silicon Labs' registration).

A device whose firmware profile says ``binds_to_esi`` finds the ESI with a Match_Desc broadcast to
the rx-on-when-idle nodes for the DRLC *server* cluster ("which only ESIs should have"), then sends
the ESI a Bind_req for each SE client cluster it runs, so that the ESI pushes new events, prices
and messages to it unasked. Silicon Labs "send[s] the bindings, but [does not] pay attention to
whether it works": a refused or unanswered Bind_req does not stop registration, and neither does
an HAN without an ESI. The time read and the requests for missed state follow (``SimDevice``).

What is left out, because the ESI here is the trust center itself (the gateway's coordinator):
key establishment (install-code keys only), IEEE_addr_req for each ESI and the partner link key.
ZDO needs a coordinator that speaks it (the EZSP emulator calls ``attach_zdo``); behind a
``SimMeter`` there is no ZDO and registration ends at once. Each request waits for its answer on
the device's clock (a timer, never a task), so it runs alike on the virtual and the real clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zigpy.types as zt
import zigpy.zdo.types as zdo_t

from zigbee_se import SE_PROFILE_ID, ClusterId

if TYPE_CHECKING:
    from simulators.clock import TimerHandle
    from simulators.device import SimDevice

ZdoUplink = Callable[[int, bytes], object]
Answered = Callable[[list[Any] | None], None]  # the answer's values, None when none came in time

ANSWER_TIMEOUT_S = 5.0
RX_ON_WHEN_IDLE = 0xFFFD  # broadcast address: every node whose receiver stays on (ESIs do)
IEEE_ADDRESS_MODE = 3
# The client clusters Silicon Labs binds (of those simulated), in the order it sends them.
BINDABLE = (("price", ClusterId.PRICE), ("drlc", ClusterId.DRLC), ("metering", ClusterId.METERING),
            ("messaging", ClusterId.MESSAGING))


class EsiRegistration:
    """One device's ESI discovery and bindings; ``deliver`` takes the ZDO answers addressed to it."""

    __slots__ = ("_coordinator", "_done", "_expect", "_timer", "_tsn", "_uplink", "bind_results", "device",
                 "esi_endpoints", "registered")

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.esi_endpoints: list[int] = []  # endpoints that answered the Match_Desc for the DRLC server
        self.bind_results: dict[int, int] = {}  # cluster id -> ZDO status of its Bind_rsp
        self.registered = False  # an ESI was found and every Bind_req was sent
        self._uplink: ZdoUplink | None = None
        self._coordinator: zt.EUI64 | None = None
        self._tsn = 0  # the ZDO transaction sequence, apart from the ZCL one
        self._expect: tuple[int, int, Answered] | None = None  # (answer cluster, tsn, then)
        self._timer: TimerHandle | None = None
        self._done: Callable[[], None] | None = None

    def attach(self, uplink: ZdoUplink, coordinator_eui64: Any) -> None:
        """ZDO to the coordinator; its EUI-64 (the trust center's) was learnt while joining."""
        self._uplink = uplink
        self._coordinator = zt.EUI64(coordinator_eui64)

    def start(self, done: Callable[[], None]) -> None:
        """Register with the ESI, then call ``done`` (also when there is no ZDO or no ESI)."""
        self.esi_endpoints, self.bind_results, self.registered = [], {}, False
        if self._uplink is None:
            done()
            return
        self._done = done
        self._ask(zdo_t.ZDOCmd.Match_Desc_req, [zt.NWK(RX_ON_WHEN_IDLE), SE_PROFILE_ID, [ClusterId.DRLC], []],
                  zdo_t.ZDOCmd.Match_Desc_rsp, self._found)

    def deliver(self, cluster_id: int, payload: bytes) -> None:
        """A ZDO frame for the device: the answer it waits for, or nothing it needs."""
        expect = self._expect
        if expect is None or not payload:
            return
        answer, tsn, then = expect
        if cluster_id != answer or payload[0] != tsn:
            return
        values, _ = zt.deserialize(payload[1:], zdo_t.CLUSTERS[zdo_t.ZDOCmd(cluster_id)][1])
        self._expect = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        then(list(values))

    # ------------------------------------------------------------------ steps
    def _found(self, values: list[Any] | None) -> None:
        if values is not None:
            _status, _nwk, matches = values
            self.esi_endpoints = [int(ep) for ep in matches]
        if not self.esi_endpoints or self._coordinator is None:
            self._finish()  # no ESI in this HAN (or none answered in time)
            return
        self._bind([int(cluster) for name, cluster in BINDABLE if self.device.profile.has(name)])

    def _bind(self, clusters: list[int]) -> None:
        if not clusters:
            self.registered = True
            self._finish()
            return
        cluster, rest = clusters[0], clusters[1:]
        to_us = zdo_t.MultiAddress()
        to_us.addrmode = zt.uint8_t(IEEE_ADDRESS_MODE)
        to_us.ieee = zt.EUI64(self.device.eui64)
        to_us.endpoint = zt.uint8_t(self.device.endpoint)

        def answered(values: list[Any] | None) -> None:
            if values is not None:
                self.bind_results[cluster] = int(values[0])
            self._bind(rest)

        self._ask(zdo_t.ZDOCmd.Bind_req, [self._coordinator, self.esi_endpoints[0], cluster, to_us],
                  zdo_t.ZDOCmd.Bind_rsp, answered)

    def _ask(self, command: zdo_t.ZDOCmd, values: list[Any], answer: zdo_t.ZDOCmd, then: Answered) -> None:
        assert self._uplink is not None
        self._tsn = (self._tsn + 1) & 0xFF
        self._expect = (int(answer), self._tsn, then)
        self._timer = self.device.clock.call_later(ANSWER_TIMEOUT_S, self._timed_out)
        self._uplink(int(command), bytes([self._tsn]) + zt.serialize(values, zdo_t.CLUSTERS[command][1]))

    def _timed_out(self) -> None:
        expect, self._expect, self._timer = self._expect, None, None
        if expect is not None:
            expect[2](None)

    def _finish(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()
