"""EZSP chapters "Utilities Frames" and the token interface: echo, counters, identity, manufacturing
and NV3 tokens."""

from __future__ import annotations

from typing import Any

import bellows.types as t

from simulators.ncp.ezsp.core import (
    NcpCore,
)


class UtilitiesFrames(NcpCore):
    def _cmd_echo(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"echo": args["data"]}

    def _cmd_customFrame(self, args: dict[str, Any]) -> dict[str, Any]:
        # No XNCP extensions: stock EmberZNet answers custom frames with an error.
        return {"status": t.EmberStatus.INVALID_CALL, "reply": t.LVBytes(b"")}

    def _counter_values(self, clear: bool) -> dict[str, Any]:
        values = [min(self.counters[c], 0xFFFF) for c in t.EmberCounterType]
        if clear:
            self.counters.clear()
        return {"values": values}

    def _cmd_readCounters(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._counter_values(clear=False)

    def _cmd_readAndClearCounters(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._counter_values(clear=True)

    def _cmd_getEui64(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"eui64": self.nvram.eui64}

    def _cmd_getNodeId(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"nodeId": 0x0000 if self.stack.network_up else 0xFFFE}

    def _cmd_getMfgToken(self, args: dict[str, Any]) -> dict[str, Any]:
        token = args["tokenId"]
        if token == t.EzspMfgTokenId.MFG_STRING:
            data = self.profile.manufacturer.encode()[:16].ljust(16, b"\x00")
        elif token == t.EzspMfgTokenId.MFG_BOARD_NAME:
            data = self.profile.board.encode()[:16].ljust(16, b"\x00")
        elif token == t.EzspMfgTokenId.MFG_CUSTOM_EUI_64:
            data = b"\xff" * 8  # never burned: the factory EUI64 is in use
        else:
            data = b""
        return {"tokenData": t.LVBytes(data)}

    def _cmd_getTokenData(self, args: dict[str, Any]) -> dict[str, Any]:
        # Only the restored-EUI64 NV3 token is emulated: it is what zigpy's restore uses to
        # move a network onto a new stick. Other tokens answer "not found" like RCP firmware.
        if args["token"] == t.NV3KeyId.CREATOR_STACK_RESTORED_EUI64:
            eui = self.nvram.restored_eui64 or t.EUI64.convert("FF:FF:FF:FF:FF:FF:FF:FF")
            return {"status": t.EmberStatus.SUCCESS, "value": t.LVBytes32(eui.serialize())}
        return {"status": t.EmberStatus.ERR_FATAL}

    def _cmd_setTokenData(self, args: dict[str, Any]) -> dict[str, Any]:
        if args["token"] != t.NV3KeyId.CREATOR_STACK_RESTORED_EUI64:
            return {"status": t.EmberStatus.ERR_FATAL}
        eui, _ = t.EUI64.deserialize(bytes(args["token_data"]))
        blank = eui == t.EUI64.convert("FF:FF:FF:FF:FF:FF:FF:FF")
        self.nvram.restored_eui64 = None if blank else eui
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_tokenFactoryReset(self, args: dict[str, Any]) -> dict[str, Any]:
        self.nvram.factory_reset(self.profile.key_table_size)
        self.members.clear()
        return {}
