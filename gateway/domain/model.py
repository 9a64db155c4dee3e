"""Enumerations and rules of the consent model (DOMAIN.md, issue 4)."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    OPERATOR = "operator"
    THIRD_PARTY = "third_party"
    FIELD_TECHNICIAN = "field_technician"


class PartyStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class PremiseClass(enum.StrEnum):
    RESIDENTIAL = "residential"
    SMALL_COMMERCIAL = "small_commercial"
    LARGE_COMMERCIAL = "large_commercial"


class AgreementKind(enum.StrEnum):
    IN_HOME_DEVICE = "in_home_device"  # may provision devices on the meter's HAN
    IN_HOME_DEVICE_SERVICES = "in_home_device_services"  # may send texts, prices, load control


class Scope(enum.StrEnum):
    TEXT = "text"
    PRICE = "price"
    LOAD_CONTROL = "load_control"


class AgreementState(enum.StrEnum):
    INVITED = "invited"
    ACTIVE = "active"
    REJECTED = "rejected"
    EXPIRED = "expired"
    COMPLETED = "completed"
    TERMINATED_BY_CUSTOMER = "terminated_by_customer"
    TERMINATED_BY_THIRD_PARTY = "terminated_by_third_party"
    TERMINATED_BY_SYSTEM = "terminated_by_system"


ENDED_STATES = frozenset(AgreementState) - {AgreementState.INVITED, AgreementState.ACTIVE}


class HanRequestState(enum.StrEnum):
    """A HAN request's own state (`han_requests.state`; its premises' and devices' states are
    counted apart): accepted (every premise has its delivery), expanding (an all-premises
    fan-out still adding pages), cancelled (a fan-out cancelled while expanding), expired (a
    fan-out whose end came before it was expanded)."""

    ACCEPTED = "accepted"
    EXPANDING = "expanding"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

# Months a customer may consent for; 24 and 36 only for large commercial premises (DOMAIN.md).
DURATIONS_MONTHS = (1, 3, 6, 9, 12)
LARGE_COMMERCIAL_DURATIONS_MONTHS = (*DURATIONS_MONTHS, 24, 36)


def allowed_durations(premise_class: PremiseClass) -> tuple[int, ...]:
    if premise_class is PremiseClass.LARGE_COMMERCIAL:
        return LARGE_COMMERCIAL_DURATIONS_MONTHS
    return DURATIONS_MONTHS


class DeviceStatus(enum.StrEnum):
    PROVISION_REQUESTED = "provision_requested"
    FIND_PENDING = "find_pending"  # ams_adapters.contract.ProvisioningState.FIND_PENDING
    JOINED = "joined"  # ProvisioningState.JOINED
    FAILED = "failed"  # ProvisioningState.FAILED: wrong code, window expired, device limit, CBKE asked for…
    DELETE_REQUESTED = "delete_requested"  # delete-device sent, the meter has not confirmed yet
    REMOVED = "removed"


class Action(enum.StrEnum):
    """What a principal may ask to do to a premise (or one of its devices)."""

    VIEW_PREMISE = "view_premise"
    MANAGE_PREMISE = "manage_premise"  # operators only: load, change, remove
    VIEW_DEVICES = "view_devices"
    PROVISION_DEVICE = "provision_device"  # add/remove HAN devices: In-Home Device agreement
    SEND_TEXT = "send_text"  # In-Home Device Services agreement with the matching scope
    SEND_PRICE = "send_price"
    SEND_LOAD_CONTROL = "send_load_control"
    # Initialize, clear or decommission the premise's HAN: operators and assigned technicians.
    MANAGE_HAN = "manage_han"


# HAN actions: every decision on them goes to the audit log.
HAN_ACTIONS = frozenset(
    {Action.PROVISION_DEVICE, Action.SEND_TEXT, Action.SEND_PRICE, Action.SEND_LOAD_CONTROL,
     Action.MANAGE_HAN}
)
SCOPE_FOR_ACTION = {
    Action.SEND_TEXT: Scope.TEXT,
    Action.SEND_PRICE: Scope.PRICE,
    Action.SEND_LOAD_CONTROL: Scope.LOAD_CONTROL,
}
