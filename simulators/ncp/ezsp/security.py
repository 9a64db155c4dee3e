"""EZSP chapter "Security Frames" (with v13's security manager): initial security state, network
key, the link key table and transient (install-code) keys."""

from __future__ import annotations

from typing import Any

import bellows.types as t

from simulators.ncp.ezsp.core import (
    UNUSED_INDEX,
    NcpCore,
)
from simulators.ncp.state import LinkKeyEntry


class SecurityFrames(NcpCore):
    def _cmd_clearKeyTable(self, args: dict[str, Any]) -> dict[str, Any]:
        self.nvram.key_table = [None] * self.profile.key_table_size
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_setInitialSecurityState(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.stack.network_up:
            return {"status": t.EmberStatus.INVALID_CALL}
        self.nvram.security = args["state"]
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_exportKey(self, args: dict[str, Any]) -> dict[str, Any]:
        security = self.nvram.security
        kind = args["context"].core_key_type
        zero = t.KeyData(bytes(16))
        if security is None:
            return {"key": zero, "status": t.sl_Status.OK}
        if kind == t.SecurityManagerKeyType.NETWORK:
            return {"key": security.networkKey, "status": t.sl_Status.OK}
        if kind == t.SecurityManagerKeyType.TC_LINK:
            return {"key": security.preconfiguredKey, "status": t.sl_Status.OK}
        return {"key": zero, "status": t.sl_Status.NOT_FOUND}

    def _cmd_getNetworkKeyInfo(self, args: dict[str, Any]) -> dict[str, Any]:
        security = self.nvram.security
        info = t.SecurityManagerNetworkKeyInfo(
            network_key_set=t.Bool(self.nvram.formed and security is not None),
            alternate_network_key_set=t.Bool.false,
            network_key_sequence_number=security.networkKeySequenceNumber if security else 0,
            alt_network_key_sequence_number=0,
            network_key_frame_counter=self.nvram.nwk_frame_counter,
        )
        return {"status": t.sl_Status.OK, "network_key_info": info}

    def _cmd_getCurrentSecurityState(self, args: dict[str, Any]) -> dict[str, Any]:
        bits = t.EmberCurrentSecurityBitmask.GLOBAL_LINK_KEY | t.EmberCurrentSecurityBitmask.HAVE_TRUST_CENTER_LINK_KEY
        security = self.nvram.security
        hashed = t.EmberInitialSecurityBitmask.TRUST_CENTER_USES_HASHED_LINK_KEY
        if security is not None and (security.bitmask & hashed) == hashed:
            bits |= t.EmberCurrentSecurityBitmask.TRUST_CENTER_USES_HASHED_LINK_KEY
        state = t.EmberCurrentSecurityState(bitmask=bits, trustCenterLongAddress=self.nvram.eui64)
        status = t.EmberStatus.SUCCESS if self.stack.network_up else t.EmberStatus.NOT_JOINED
        return {"status": status, "state": state}

    def _cmd_exportLinkKeyByIndex(self, args: dict[str, Any]) -> dict[str, Any]:
        index = int(args["index"])
        entry = self.nvram.key_table[index] if index < len(self.nvram.key_table) else None
        if entry is None:
            return {"status": t.sl_Status.NOT_FOUND}
        meta = t.SecurityManagerAPSKeyMetadata(
            bitmask=t.EmberKeyStructBitmask.KEY_HAS_OUTGOING_FRAME_COUNTER
            | t.EmberKeyStructBitmask.KEY_HAS_INCOMING_FRAME_COUNTER,
            outgoing_frame_counter=entry.tx_counter,
            incoming_frame_counter=entry.rx_counter,
            ttl_in_seconds=0,
        )
        return {
            "eui64": entry.eui64,
            "plaintext_key": entry.key,
            "key_data": meta,
            "status": t.sl_Status.OK,
        }

    def _cmd_importLinkKey(self, args: dict[str, Any]) -> dict[str, Any]:
        index = int(args["index"])
        if index >= len(self.nvram.key_table):
            return {"status": t.sl_Status.INVALID_INDEX}
        self.nvram.key_table[index] = LinkKeyEntry(eui64=args["address"], key=args["key"])
        return {"status": t.sl_Status.OK}

    def _cmd_findKeyTableEntry(self, args: dict[str, Any]) -> dict[str, Any]:
        for index, entry in enumerate(self.nvram.key_table):
            if entry is not None and entry.eui64 == args["address"]:
                return {"index": index}
        return {"index": UNUSED_INDEX}

    def _cmd_eraseKeyTableEntry(self, args: dict[str, Any]) -> dict[str, Any]:
        index = int(args["index"])
        if index >= len(self.nvram.key_table):
            return {"status": t.EmberStatus.INDEX_OUT_OF_RANGE}
        self.nvram.key_table[index] = None
        return {"status": t.EmberStatus.SUCCESS}

    def _cmd_importTransientKey(self, args: dict[str, Any]) -> dict[str, Any]:
        self.stack.transient_keys[args["eui64"]] = args["plaintext_key"]
        return {"status": t.sl_Status.OK}
