"""Where the SE DRLC client implementations disagree, one ``DrlcRules`` per variant.

``simulators/drlc_client.py`` runs the event table; the firmware profile's ``drlc_variant`` picks
the rules here (SE_BEHAVIOUR.md §1, docs/simulators.md "Stack variants").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from zigbee_se import EventStatus

# Who wins when a new load-control event overlaps a stored one (SE_BEHAVIOUR.md §1.5):
ISSUER_ID = "issuer_id"  # the SE rule: the higher Issuer Event ID is the newer event and wins
NEWEST_RECEIVED = "newest_received"  # SL, FSL: whatever arrives last wins, ids not compared
LATER_START = "later_start"  # NXP: the later start wins, equal starts the higher id
OVERLAP_WINNERS = (ISSUER_ID, NEWEST_RECEIVED, LATER_START)


@dataclass(frozen=True, slots=True)
class DrlcRules:
    """Where the stacks disagree (SE_BEHAVIOUR.md §1), one flag per disagreement.

    ``spec`` (the default variant) follows the SE rule where one is known and Silicon Labs (the
    most widely certified stack) elsewhere. The others model real stacks and keep their known
    deviations, each from the source named here and in docs/simulators.md:

    - overlap winner. The SE rule: the Issuer Event ID is "a unique number managed by upstream
      systems or a UTC based time stamp ... identifying when the Load Control Event was issued"
      (SE 1.x DRLC cluster text, as zsmartsystems 0701_DemandResponseAndLoadControl.xml quotes
      it); later SE clusters say so outright ("allows devices to determine which information is
      newer", e.g. the Price/Calendar Issuer Event ID text ZBOSS's headers quote). So an event
      older than an overlapping one the device holds never replaces it: RES 0xFE, as our price
      client refuses an older price (SL price-client.c: "Prices with the newer issuer event ids
      takes priority over all nested and overlapping prices"), as NXP refuses the losing event,
      and as panweave drlc.rs (low trust, cites SE Annex E) does. The Annex text itself could not
      be read (SE_BEHAVIOUR.md §8). Known deviations:
      ``silabs``: newest received wins, no id comparison (gecko_sdk load-control-event-table.c
      sli_zigbee_af_schedule_load_control_event, overlapFound); ``freescale``: same (BeeStack
      ZclSEDRLC.c ZCL_ScheduleEvents); ``nxp``: later start wins, equal starts the higher id, the
      losing new event RES 0xFE (mcuxsdk DRLCTableManagerNoMutex.c bGetEarliestStartTime,
      eSE_DRLCOverlapAddEventToScheduler). ``exegin``'s overlap code is not public: it keeps
      SL's (its other flags come from the Exegin ZSDK sources, SE_BEHAVIOUR.md "EXG").
    """

    name: str
    ueg0_matches_all: bool  # device UEG 0 = member of every group (SL) or of group 0 only (NXP/FSL)
    mask_class_bits: bool  # event class masked to the device's bits; partial overlap strips bits
    overlap_winner: str  # one of OVERLAP_WINNERS (above)
    supersede_running_at_new_start: bool  # 0x07 for a running event when the new one starts
    duplicate_res: bool  # EXG: a duplicate LCE gets RES 0x01 again
    res_opt_before_start: bool  # SL: 0x04/0x05 sent at once for a scheduled event (precedence bug)
    opt_out_start_status: int  # status at start after an early opt-out (0x04; FSL 0x0A)
    expired_when_end_equals_now: bool  # FSL: end <= now is expired
    strict_field_ranges: bool  # FSL: out-of-range fields -> 0xFE
    late_start_keeps_duration: bool  # NXP: a late-start event runs its full duration from now
    randomize_in_minutes: bool  # NXP/FSL draw whole minutes in [0, max]; SL seconds in [0, max)
    cancel_late_status: int  # effective time after the end: 0xF9 (SL/FSL) or 0xF8 (NXP)
    cancel_unknown_status: int  # 0xFD, EXG 0xFE
    cancel_nonzero_effective_refused: bool  # EXG: Default Response UNSUPPORTED_ATTRIBUTE
    cancel_all_empty_res: bool  # NXP: RES 0xF8 id 0; others Default Response SUCCESS
    cancel_on_tick: bool  # SL: cancels and supersedes take effect on the next 1 s tick
    fsl_cancel_ueg_mismatch_res: bool  # FSL: UEG mismatch on cancel -> RES 0xF8
    signature: str  # "dummy" (type 0 + 42 x 0xFF), "none" (EXG, 18 bytes), "ecdsa" (FSL type 1)
    report_applied: str  # "event" (SL echoes event), "applied" (NXP), "not_used" (EXG)


_SILABS = DrlcRules(
    name="silabs", ueg0_matches_all=True, mask_class_bits=False, overlap_winner=NEWEST_RECEIVED,
    supersede_running_at_new_start=False, duplicate_res=False, res_opt_before_start=True,
    opt_out_start_status=EventStatus.OPTED_OUT, expired_when_end_equals_now=False,
    strict_field_ranges=False, late_start_keeps_duration=False, randomize_in_minutes=False,
    cancel_late_status=EventStatus.REJECTED_INVALID_EFFECTIVE_TIME,
    cancel_unknown_status=EventStatus.REJECTED_UNDEFINED_EVENT,
    cancel_nonzero_effective_refused=False, cancel_all_empty_res=False, cancel_on_tick=True,
    fsl_cancel_ueg_mismatch_res=False, signature="dummy", report_applied="event",
)

RULES: dict[str, DrlcRules] = {
    # SL's timing and table, without its known deviations: the issuer-id overlap rule, and no
    # RES for an opt-out before the start ("SE 1.0 and 1.1 dictate that if the event has not yet
    # started, and the user opts-out then don't send a status message": SL's own comment, Bug
    # 13546, above the code that sends one anyway).
    "spec": replace(_SILABS, name="spec", overlap_winner=ISSUER_ID, res_opt_before_start=False),
    "silabs": _SILABS,
    "nxp": DrlcRules(
        name="nxp", ueg0_matches_all=False, mask_class_bits=True, overlap_winner=LATER_START,
        supersede_running_at_new_start=True, duplicate_res=False, res_opt_before_start=False,
        opt_out_start_status=EventStatus.OPTED_OUT, expired_when_end_equals_now=False,
        strict_field_ranges=False, late_start_keeps_duration=True, randomize_in_minutes=True,
        cancel_late_status=EventStatus.REJECTED_INVALID_CANCEL,
        cancel_unknown_status=EventStatus.REJECTED_UNDEFINED_EVENT,
        cancel_nonzero_effective_refused=False, cancel_all_empty_res=True, cancel_on_tick=False,
        fsl_cancel_ueg_mismatch_res=False, signature="dummy", report_applied="applied",
    ),
    "exegin": replace(
        _SILABS, name="exegin", duplicate_res=True, res_opt_before_start=False,
        cancel_unknown_status=EventStatus.REJECTED, cancel_nonzero_effective_refused=True,
        signature="none", report_applied="not_used",
    ),
    "freescale": DrlcRules(
        name="freescale", ueg0_matches_all=False, mask_class_bits=True,
        overlap_winner=NEWEST_RECEIVED, supersede_running_at_new_start=True, duplicate_res=False,
        res_opt_before_start=False, opt_out_start_status=EventStatus.COMPLETED_NO_PARTICIPATION,
        expired_when_end_equals_now=True, strict_field_ranges=True, late_start_keeps_duration=False,
        randomize_in_minutes=True, cancel_late_status=EventStatus.REJECTED_INVALID_EFFECTIVE_TIME,
        cancel_unknown_status=EventStatus.REJECTED_UNDEFINED_EVENT,
        cancel_nonzero_effective_refused=False, cancel_all_empty_res=False, cancel_on_tick=False,
        fsl_cancel_ueg_mismatch_res=True, signature="ecdsa", report_applied="event",
    ),
}
