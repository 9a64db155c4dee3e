"""EZSP chapter "Configuration Frames": version, configuration values, values, endpoints, policies."""

from __future__ import annotations

from typing import Any

import bellows.types as t

from simulators.ncp.ezsp.core import (
    NcpCore,
)


class ConfigurationFrames(NcpCore):
    def _cmd_version(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "protocolVersion": self.profile.ezsp_version,
            "stackType": self.profile.stack_type,
            "stackVersion": self.profile.stack_version_word,
        }

    def _value(self, value_id: t.EzspValueId) -> bytes | None:
        if value_id == t.EzspValueId.VALUE_VERSION_INFO:
            major, minor, patch, special = self.profile.stack_version
            return (
                self.profile.build.to_bytes(2, "little")
                + bytes([major, minor, patch, special, 0xAA])  # 0xAA: release build type
            )
        if value_id == t.EzspValueId.VALUE_FREE_BUFFERS:
            return bytes([self.profile.packet_buffer_count])
        if value_id == t.EzspValueId.VALUE_NWK_FRAME_COUNTER:
            return self.nvram.nwk_frame_counter.to_bytes(4, "little")
        if value_id == t.EzspValueId.VALUE_APS_FRAME_COUNTER:
            return self.nvram.aps_frame_counter.to_bytes(4, "little")
        return self.stack.values.get(value_id)

    def _cmd_getValue(self, args: dict[str, Any]) -> dict[str, Any]:
        value = self._value(args["valueId"])
        if value is None:
            return {"status": t.EzspStatus.ERROR_INVALID_ID, "value": t.LVBytes(b"")}
        return {"status": t.EzspStatus.SUCCESS, "value": t.LVBytes(value)}

    def _cmd_setValue(self, args: dict[str, Any]) -> dict[str, Any]:
        value_id, value = args["valueId"], bytes(args["value"])
        if value_id == t.EzspValueId.VALUE_NWK_FRAME_COUNTER:
            self.nvram.nwk_frame_counter = int.from_bytes(value, "little")
        elif value_id == t.EzspValueId.VALUE_APS_FRAME_COUNTER:
            self.nvram.aps_frame_counter = int.from_bytes(value, "little")
        else:
            self.stack.values[value_id] = value
        return {"status": t.EzspStatus.SUCCESS}

    def _cmd_getConfigurationValue(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"status": t.EzspStatus.SUCCESS, "value": self.stack.config.get(args["configId"], 0)}

    def _cmd_setConfigurationValue(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.stack.network_up:
            return {"status": t.EzspStatus.ERROR_INVALID_CALL}  # only before networkInit
        self.stack.config[args["configId"]] = int(args["value"])
        return {"status": t.EzspStatus.SUCCESS}

    def _cmd_addEndpoint(self, args: dict[str, Any]) -> dict[str, Any]:
        endpoint = int(args["endpoint"])
        if endpoint in self.stack.endpoints:
            return {"status": t.EzspStatus.ERROR_INVALID_CALL}
        self.stack.endpoints[endpoint] = (
            int(args["profileId"]),
            [int(c) for c in args["inputClusterList"]],
            [int(c) for c in args["outputClusterList"]],
        )
        return {"status": t.EzspStatus.SUCCESS}

    def _cmd_setPolicy(self, args: dict[str, Any]) -> dict[str, Any]:
        self.stack.policies[args["policyId"]] = int(args["decisionId"])
        return {"status": t.EzspStatus.SUCCESS}
