"""Writing a device's settings through its premise's route: its utility enrollment group (the
group load-control events address) and its randomization minutes, per device.

Who may (gateway/api/policy.py): the operator, or a third party whose agreement in force on the
premise grants load control *and* that provisioned the device (a device of another party, or an
unknown one, is the same 404). The write is a HAN request (`set_enrollment_group`): 202 with its
id, then `GET /v1/han-requests/{id}` and `/deliveries` show the device's answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ams_adapters.contract import OperationKind as RequestKind
from gateway.api.deps import Svc, Who
from gateway.api.links import links, to
from gateway.api.params import EsiIdPath, Eui64Path
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import PROBLEM_RESPONSES
from gateway.authz import Decision
from gateway.pipeline.device_writes import DeviceWrites
from gateway.pipeline.dispatcher import Dispatcher

router = APIRouter(route_class=PolicyRoute, prefix="/v1", responses=PROBLEM_RESPONSES, tags=["provisioning"])

# SE 1.x DRLC client attributes: UtilityEnrollmentGroup uint8 0x00..0xFF; Start- and
# DurationRandomizationMinutes uint8 0x00..0x3C (60 minutes, the cluster's stated range).
MAX_RANDOMIZATION_MINUTES = 60


class EnrollmentGroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    utility_enrollment_group: Annotated[int, Field(
        ge=0, le=0xFF, description="UtilityEnrollmentGroup (DRLC client attribute 0x0000): the device takes a "
        "load-control event whose group is 0 or this one. 0: every event (the SE default)")]
    start_randomization_minutes: Annotated[int | None, Field(
        ge=0, le=MAX_RANDOMIZATION_MINUTES, description="StartRandomizationMinutes (0x0001): how far the device "
        "may delay an event's start when the event asks for it; omitted: left as it is")] = None
    duration_randomization_minutes: Annotated[int | None, Field(
        ge=0, le=MAX_RANDOMIZATION_MINUTES, description="DurationRandomizationMinutes (0x0002): how far it may "
        "move an event's end; omitted: left as it is")] = None

    def values(self) -> dict[str, int]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


class DeviceWriteAccepted(BaseModel):
    """The 202 of a device write: stored, and on its way to the device."""

    id: int = Field(description="the HAN request: GET /v1/han-requests/{id} and /deliveries show the device's answer")
    kind: RequestKind
    esi_id: str
    eui64: str
    se_id: int = Field(description="the write's id; the ZCL sequence number of the frame (and of the device's "
                                   "answer) is se_id mod 256")
    attributes: dict[str, int] = Field(description="what is written, by attribute name")
    expires_at: datetime = Field(description="sent by then, and answered by then (else `expired` / `no_answer`)")


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


@router.put("/premises/{esi_id}/devices/{eui64}/enrollment-group", status_code=202,
            response_model=DeviceWriteAccepted, responses=links(
                202, GetRequest=to("/v1/han-requests/{request_id}", "get", request_id="$response.body#/id"),
                GetDeliveries=to("/v1/han-requests/{request_id}/deliveries", "get", request_id="$response.body#/id")),
            summary="Set a device's utility enrollment group (and randomization minutes): ZCL Write Attributes "
            "to the device, its answer in the HAN request")
async def set_enrollment_group(esi_id: EsiIdPath, eui64: Eui64Path, body: EnrollmentGroupIn,  # noqa: PLR0917
                               svc: Svc, who: Who, request: Request) -> DeviceWriteAccepted:
    """Writes the device's DRLC client attributes (SE 1.0-1.2), through the premise's route. Its
    answer ends the request's delivery: `written`, `partly_written` or `refused` (the refused
    attributes with their ZCL status in `reason`, e.g. `0x87 INVALID_VALUE`), or `no_answer`. A
    premise whose route cannot address one device with a frame (MultiSpeak, IEC 61968-9 head-ends)
    is refused at once: `409 route_cannot_set_enrollment_group`."""
    # Allowed by the policy: the premise (load control), and for a third party its own device.
    decision: Decision = request.state.decision
    dispatcher = _dispatcher(request)
    accepted = await DeviceWrites(svc.store, dispatcher.routes, svc.config.pipeline).set_enrollment_group(
        who, esi_id, eui64.upper(), body.values(), decision.agreement_id, svc.clock.now())
    dispatcher.poke()
    return DeviceWriteAccepted(id=accepted.request_id, kind=RequestKind.SET_ENROLLMENT_GROUP, esi_id=accepted.esi_id,
                               eui64=accepted.eui64, se_id=accepted.se_id, attributes=accepted.attributes,
                               expires_at=accepted.expires_at)
