"""EZSP chapter "Binding Frames": the binding table as the host reads it (devices fill it over ZDO,
see `zdo.py`)."""

from __future__ import annotations

from typing import Any

import bellows.types as t

from simulators.ncp.ezsp.core import (
    NcpCore,
)


class BindingFrames(NcpCore):
    def _cmd_getBinding(self, args: dict[str, Any]) -> dict[str, Any]:
        index = int(args["index"])
        if index >= self.profile.binding_table_size:
            return {"status": t.EmberStatus.INDEX_OUT_OF_RANGE}
        if index >= len(self.nvram.bindings):
            entry = t.EmberBindingTableEntry(
                type=t.EmberBindingType.UNUSED_BINDING,
                local=0,
                clusterId=0,
                remote=0,
                identifier=t.EUI64(bytes(8)),
                networkIndex=0,
            )
        else:
            local, cluster, remote_eui, remote_ep = self.nvram.bindings[index]
            entry = t.EmberBindingTableEntry(
                type=t.EmberBindingType.UNICAST_BINDING,
                local=local,
                clusterId=cluster,
                remote=remote_ep,
                identifier=remote_eui,
                networkIndex=0,
            )
        return {"status": t.EmberStatus.SUCCESS, "value": entry}
