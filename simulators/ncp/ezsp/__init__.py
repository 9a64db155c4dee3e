"""EZSP protocol 13 as an EmberZNet 7.3/7.4 NCP answers it, behind the ASH layer.

One module per chapter of the EZSP reference (UG100), as bellows lays out its command tables
(`bellows/ezsp/v*/commands.py`): configuration, utilities (with tokens), networking, binding,
messaging, security, trust center; plus the stack's own ZDO. `core` holds the state, the framing and
the dispatch that finds a command's `_cmd_<name>` handler in whichever chapter defines it.
"""

from __future__ import annotations

from simulators.ncp.ezsp.binding import BindingFrames
from simulators.ncp.ezsp.configuration import ConfigurationFrames
from simulators.ncp.ezsp.messaging import MessagingFrames
from simulators.ncp.ezsp.networking import NetworkingFrames
from simulators.ncp.ezsp.security import SecurityFrames
from simulators.ncp.ezsp.trust_center import TrustCenterFrames
from simulators.ncp.ezsp.utilities import UtilitiesFrames
from simulators.ncp.ezsp.zdo import ZdoStack

__all__ = ["EzspNcp"]


class EzspNcp(
    ConfigurationFrames,
    UtilitiesFrames,
    NetworkingFrames,
    BindingFrames,
    MessagingFrames,
    SecurityFrames,
    TrustCenterFrames,
    ZdoStack,
):
    """One emulated coordinator: its EZSP command processor, its stack and its HAN."""
