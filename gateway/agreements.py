"""Customer consent: invitations, the consent decision, renewal, termination and the timers.

States (DOMAIN.md): invited -> active | rejected | expired; active -> completed |
terminated_by_customer | terminated_by_third_party | terminated_by_system. Every state change is a
compare-and-set in the store, so a double click or a race with the lifecycle timer has one winner.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment

from gateway.clock import Clock, add_months
from gateway.config import GatewayConfig
from gateway.domain.esi_id import EsiIdError, tdsp_for_esi_id
from gateway.domain.model import (
    ENDED_STATES,
    ENERGY_DATA_CONTINUOUS_MONTHS,
    ONE_TIME_LOOKBACK_MONTHS,
    AgreementKind,
    AgreementState,
    DataMode,
    PremiseClass,
    Scope,
    UsageInterval,
    allowed_durations,
)
from gateway.domain.records import Agreement, AgreementPremise, EnergyDataTerms, Party
from gateway.errors import Conflict, FieldError, InvalidRequest, NotFound
from gateway.mail import Mailer
from gateway.mail_sender import MailSender
from gateway.pages.i18n import page_templates, tr_in
from gateway.store.parties import hash_token, new_token
from gateway.store.store import Store
from gateway.store.unit_of_work import joined_connection

log = logging.getLogger(__name__)

MAX_PREMISES_PER_INVITATION = 200  # SMT's cap of ESI IDs per request (DOMAIN.md)
# A deliberately loose check: one @, no spaces, a dot in the domain. Deliverability is the SMTP
# server's business; this catches typos and swapped fields.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PENDING = (AgreementState.INVITED, AgreementState.ACTIVE)
# How long a stored Idempotency-Key response is replayed (a retry window, like Stripe's 24 h).
IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=24)

# The customer's page link mail (the /my form): its subjects, and how often one address gets one.
CUSTOMER_LINK_SUBJECTS = {"en": "Your agreements and meter devices",
                          "es": "Sus acuerdos y dispositivos del medidor"}
CUSTOMER_LINK_MAIL_INTERVAL = timedelta(minutes=15)

def scope_words(scope: Scope, lang: str = "en") -> str:
    words = {Scope.TEXT: tr_in(lang, "text messages"), Scope.PRICE: tr_in(lang, "prices"),
             Scope.LOAD_CONTROL: tr_in(lang, "load-control events")}
    return words[scope]


def scopes_text(scopes: Sequence[Scope], lang: str = "en") -> str:
    words = [scope_words(s, lang) for s in scopes]
    if len(words) <= 1:
        return "".join(words)
    return tr_in(lang, "%(first)s and %(last)s", first=", ".join(words[:-1]), last=words[-1])


# Texas premises: usage periods are shown, and days and months cut, in Central Time.
USAGE_TIME_ZONE = ZoneInfo("America/Chicago")
INTERVAL_SECONDS = 900  # one-time periods start and end on a 15-minute boundary


def interval_words(interval: UsageInterval, lang: str = "en") -> str:
    words = {UsageInterval.MIN15: tr_in(lang, "15-minute interval, daily and monthly"),
             UsageInterval.DAILY: tr_in(lang, "daily and monthly"), UsageInterval.MONTHLY: tr_in(lang, "monthly")}
    return words[interval]


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(USAGE_TIME_ZONE):%Y-%m-%d %H:%M}"


def data_text(data: EnergyDataTerms, lang: str = "en") -> str:
    """Which data, which period and how often, as the customer reads it (pages and mails)."""
    words = tr_in(lang, "your electricity usage data (%(interval)s kWh used, and generated where you have solar)",
                  interval=interval_words(data.interval, lang))
    if data.mode is DataMode.ONE_TIME and data.period_start and data.period_end:
        return tr_in(lang, "%(words)s for the past period from %(start)s to %(end)s Central Time, once",
                     words=words, start=_local(data.period_start), end=_local(data.period_end))
    return tr_in(lang, "%(words)s as your meter records it, from the day you accept until the agreement ends, "
                 "delivered daily", words=words)


def purpose(agreement: Agreement, lang: str | None = None) -> str:
    """What the agreement lets the party do, in `lang` (default: the customer's language)."""
    lang = lang or agreement.customer_language
    if agreement.kind is AgreementKind.IN_HOME_DEVICE:
        return tr_in(lang, "install and manage devices on your smart meter's home network")
    if agreement.kind is AgreementKind.ENERGY_DATA and agreement.data is not None:
        return tr_in(lang, "read %(data)s", data=data_text(agreement.data, lang))
    return tr_in(lang, "send %(scopes)s to the devices in your home", scopes=scopes_text(agreement.scopes, lang))


@dataclass(frozen=True)
class InvitationPremise:
    esi_id: str
    meter_number: str


@dataclass(frozen=True)
class Invitation:
    kind: AgreementKind
    scopes: tuple[Scope, ...]
    premises: tuple[InvitationPremise, ...]
    customer_email: str
    duration_months: int
    data: EnergyDataTerms | None = None  # energy_data agreements: what they grant
    customer_language: str = "en"  # the consent pages' and emails' language: "en" or "es"


@dataclass(frozen=True)
class ConsentView:
    agreement: Agreement
    party: Party
    renewal: bool
    months: int


@dataclass(frozen=True)
class LifecycleReport:
    expired: int = 0
    completed: int = 0
    reminded: int = 0
    renewals_lapsed: int = 0
    mails_sent: int = 0  # mail queue retries that went out
    mails_failed: int = 0  # mail queue retries that failed again


class AgreementService:
    def __init__(
        self,
        store: Store,
        mailer: Mailer,
        config: GatewayConfig,
        templates: Environment,
        clock: Clock,
    ) -> None:
        self.store = store
        self.mailer = mailer
        self.config = config
        self.templates = templates
        self.clock = clock
        self.mail_sender = MailSender(store, mailer, config.mail.from_address, clock,
                                      timedelta(seconds=config.mail.lease_seconds))
        # The customer's "all my agreements" page link for an address (gateway/pages/keys.py), put
        # in every agreement email; None: no such link (the pages are not served).
        self.customer_link: Callable[[str], str] | None = None

    # -- third party side ---------------------------------------------------------------------

    async def validate(self, party: Party, inv: Invitation) -> list[FieldError]:
        """Every problem with an invitation, each naming its field (empty list: valid)."""
        errors: list[FieldError] = []
        if inv.kind is AgreementKind.IN_HOME_DEVICE_SERVICES and not inv.scopes:
            errors.append(FieldError("scopes", "scope_required",
                                     "an in-home device services agreement needs at least one "
                                     "scope of: text, price, load_control", []))
        if inv.kind is not AgreementKind.IN_HOME_DEVICE_SERVICES and inv.scopes:
            errors.append(FieldError("scopes", "scope_not_allowed",
                                     "scopes belong to in_home_device_services agreements; an "
                                     f"{inv.kind.value} agreement has none",
                                     [s.value for s in inv.scopes]))
        errors += self._validate_data(inv)
        if len(set(inv.scopes)) != len(inv.scopes):
            errors.append(FieldError("scopes", "duplicate_scope", "a scope is listed twice",
                                     [s.value for s in inv.scopes]))
        if not EMAIL_RE.match(inv.customer_email):
            errors.append(FieldError("customer_email", "invalid_email",
                                     "not an email address", inv.customer_email))
        if not inv.premises:
            errors.append(FieldError("premises", "premises_required",
                                     "at least one premise (ESI ID and meter number)", []))
        if len(inv.premises) > MAX_PREMISES_PER_INVITATION:
            errors.append(FieldError("premises", "too_many_premises",
                                     f"at most {MAX_PREMISES_PER_INVITATION} premises per "
                                     "invitation", len(inv.premises)))
            return errors
        seen: set[str] = set()
        found = await self.store.get_premises([p.esi_id for p in inv.premises])
        email_mismatch = False
        classes: set[PremiseClass] = set()
        for i, item in enumerate(inv.premises):
            where = f"premises[{i}]"
            try:
                tdsp_for_esi_id(item.esi_id)
            except EsiIdError as exc:
                errors.append(FieldError(f"{where}.esi_id", exc.code, exc.reason, item.esi_id))
                continue
            if item.esi_id in seen:
                errors.append(FieldError(f"{where}.esi_id", "duplicate_esi_id",
                                         "this ESI ID is listed twice", item.esi_id))
                continue
            seen.add(item.esi_id)
            premise = found.get(item.esi_id)
            if premise is None:
                errors.append(FieldError(f"{where}.esi_id", "unknown_esi_id",
                                         "no premise with this ESI ID is loaded", item.esi_id))
                continue
            if premise.status != "active":
                errors.append(FieldError(f"{where}.esi_id", "premise_not_active",
                                         f"the premise is {premise.status}", item.esi_id))
                continue
            if premise.meter_number != item.meter_number:
                errors.append(FieldError(f"{where}.meter_number", "meter_number_mismatch",
                                         "this is not the meter number on record for the ESI ID",
                                         item.meter_number))
            if premise.se_version is None and inv.kind is not AgreementKind.ENERGY_DATA:
                errors.append(FieldError(f"{where}.esi_id", "meter_not_han_ready",
                                         "the meter has no Smart Energy HAN capability on record",
                                         item.esi_id))
            if (premise.customer_email or "").lower() != inv.customer_email.lower():
                email_mismatch = True
            classes.add(premise.premise_class)
        if email_mismatch and EMAIL_RE.match(inv.customer_email):
            errors.append(FieldError("customer_email", "customer_email_mismatch",
                                     "the email is not the customer contact on record for every "
                                     "premise", inv.customer_email))
        allowed = self._durations(inv.kind, inv.data, classes)
        if inv.duration_months not in allowed:
            errors.append(FieldError("duration_months", "duration_not_allowed",
                                     f"allowed here: {sorted(allowed)} months",
                                     inv.duration_months))
        if seen:
            for i, item in enumerate(inv.premises):
                if item.esi_id not in seen or item.esi_id not in found:
                    continue
                dup = await self.store.agreements_for_premise(
                    item.esi_id, states=PENDING, party_id=party.id)
                mode = inv.data.mode if inv.data else None  # energy_data: one of each mode
                dup = [a for a in dup if a.kind is inv.kind and (a.data.mode if a.data else None) == mode]
                if dup:
                    errors.append(FieldError(
                        f"premises[{i}].esi_id", "duplicate_active_agreement",
                        f"agreement {dup[0].id} ({dup[0].state.value}) of the same kind already "
                        "covers this premise", item.esi_id))
        return errors

    @staticmethod
    def _durations(kind: AgreementKind, data: EnergyDataTerms | None,
                   classes: set[PremiseClass]) -> set[int]:
        allowed = set(allowed_durations(PremiseClass.LARGE_COMMERCIAL))
        for cls in classes:
            allowed &= set(allowed_durations(cls))
        if kind is AgreementKind.ENERGY_DATA and data is not None and data.mode is DataMode.CONTINUOUS:
            allowed &= set(ENERGY_DATA_CONTINUOUS_MONTHS)  # continuous: 1-12 months (ENERGY_DATA.md §1.1)
        return allowed

    def _validate_data(self, inv: Invitation) -> list[FieldError]:
        """The terms of an Energy Data invitation (`data`), each problem naming its field."""
        data = inv.data
        if inv.kind is not AgreementKind.ENERGY_DATA:
            if data is None:
                return []
            return [FieldError("data", "data_not_allowed", "data terms belong to energy_data "
                               f"agreements; an {inv.kind.value} agreement has none", None)]
        if data is None:
            return [FieldError("data", "data_required", "an energy_data agreement needs data: "
                               '{"mode": "one_time"|"continuous", "interval": "15min"|"daily"|'
                               '"monthly", and for one_time "from" and "to"}', None)]
        errors: list[FieldError] = []
        start, end = data.period_start, data.period_end
        if data.mode is DataMode.CONTINUOUS:
            for name, value in (("from", start), ("to", end)):
                if value is not None:
                    errors.append(FieldError(f"data.{name}", "period_not_allowed",
                                             "a continuous agreement covers its term from "
                                             "acceptance; it takes no period", value.isoformat()))
            return errors
        now = self.clock.now()
        earliest = add_months(now, -ONE_TIME_LOOKBACK_MONTHS)
        for name, value in (("from", start), ("to", end)):
            if value is None:
                errors.append(FieldError(f"data.{name}", "period_required",
                                         "a one_time agreement names its past period", None))
            elif int(value.timestamp()) % INTERVAL_SECONDS or value.microsecond:
                errors.append(FieldError(f"data.{name}", "not_on_interval_boundary",
                                         "on a 15-minute boundary (:00, :15, :30, :45)",
                                         value.isoformat(), INTERVAL_SECONDS))
        if start is None or end is None or errors:
            return errors
        if start >= end:
            errors.append(FieldError("data.to", "period_empty", "after data.from",
                                     end.isoformat(), start.isoformat()))
        if end > now:
            errors.append(FieldError("data.to", "period_not_past",
                                     "a one_time period lies in the past: at most now",
                                     end.isoformat(), now.isoformat()))
        if start < earliest:
            errors.append(FieldError("data.from", "period_too_old",
                                     f"at most {ONE_TIME_LOOKBACK_MONTHS} months back",
                                     start.isoformat(), earliest.isoformat()))
        return errors

    async def invite(self, party: Party, inv: Invitation) -> Agreement:
        errors = await self.validate(party, inv)
        if errors:
            raise InvalidRequest(f"the invitation has {len(errors)} invalid field(s)",
                                 errors=errors)
        now = self.clock.now()
        token = new_token()
        expires = now + timedelta(days=self.config.agreements.invitation_days)
        agreement = await self.store.create_agreement(
            party_id=party.id, kind=inv.kind, scopes=inv.scopes,
            customer_email=inv.customer_email, duration_months=inv.duration_months,
            covered=[AgreementPremise(p.esi_id, p.meter_number) for p in inv.premises],
            consent_token_hash=hash_token(token), invitation_expires_at=expires, now=now, data=inv.data,
            customer_language=inv.customer_language,
            event=("agreement.invited", {"invitation_expires_at": expires.isoformat(), "resent": False}))
        await self._send_invitation(agreement, party, token, expires, agreement.duration_months)
        return agreement

    async def get_for_party(self, agreement_id: int, party_id: int | None) -> Agreement:
        """The agreement if the party owns it (any party for None) and it is still visible."""
        agreement = await self.store.get_agreement(agreement_id)
        if agreement is None or (party_id is not None and agreement.party_id != party_id):
            raise NotFound(f"no agreement {agreement_id}")
        if party_id is not None and not self.visible(agreement):
            raise NotFound(f"no agreement {agreement_id}")
        return agreement

    def visible(self, agreement: Agreement) -> bool:
        if agreement.ended_at is None:
            return True
        window = timedelta(days=self.config.agreements.visibility_days)
        return agreement.ended_at >= self.clock.now() - window

    async def resend(self, agreement_id: int, party: Party) -> Agreement:
        """Send the invitation again with a new link (the old one dies); allowed once."""
        agreement = await self.get_for_party(agreement_id, party.id)
        if agreement.state not in (AgreementState.INVITED, AgreementState.EXPIRED):
            raise Conflict(f"agreement {agreement_id} is {agreement.state.value}; only invited "
                           "or expired invitations can be re-sent", code="not_resendable")
        if agreement.resend_count >= 1:
            raise Conflict(f"agreement {agreement_id} was re-sent already; an invitation may be "
                           "re-sent once", code="resend_limit_reached")
        if agreement.state is AgreementState.EXPIRED:
            # Reviving an expired invitation: the premises, meters and customer may have
            # changed, and another invitation may cover the premises now.
            errors = await self.validate(party, Invitation(
                kind=agreement.kind, scopes=agreement.scopes,
                premises=tuple(InvitationPremise(p.esi_id, p.meter_number)
                               for p in agreement.premises),
                customer_email=agreement.customer_email,
                duration_months=agreement.duration_months, data=agreement.data))
            if errors:
                raise InvalidRequest(f"agreement {agreement_id} can no longer be re-sent",
                                     errors=errors)
        now = self.clock.now()
        token = new_token()
        expires = now + timedelta(days=self.config.agreements.invitation_days)
        updated = await self.store.update_agreement(
            agreement_id, expect_states=[agreement.state], expect={"resend_count": 0},
            state=AgreementState.INVITED.value,
            resend_count=agreement.resend_count + 1, consent_token_hash=hash_token(token),
            invitation_expires_at=expires, consent_expires_at=expires, ended_at=None,
            end_reason=None, updated_at=now,
            event=("agreement.invited", {"invitation_expires_at": expires.isoformat(), "resent": True}))
        if updated is None:
            raise Conflict(f"agreement {agreement_id} changed meanwhile; try again",
                           code="state_changed")
        await self._send_invitation(updated, party, token, expires, updated.duration_months)
        return updated

    async def renew(self, agreement_id: int, party: Party, duration_months: int) -> Agreement:
        """Ask the customer to extend an active agreement; nothing changes until they accept."""
        agreement = await self.get_for_party(agreement_id, party.id)
        if agreement.state is not AgreementState.ACTIVE:
            raise Conflict(f"agreement {agreement_id} is {agreement.state.value}; only active "
                           "agreements can be renewed", code="not_renewable")
        found = await self.store.get_premises([p.esi_id for p in agreement.premises])
        allowed = self._durations(agreement.kind, agreement.data,
                                  {p.premise_class for p in found.values()})
        if duration_months not in allowed:
            raise InvalidRequest("the renewal has an invalid duration", errors=[FieldError(
                "duration_months", "duration_not_allowed",
                f"allowed here: {sorted(allowed)} months", duration_months)])
        now = self.clock.now()
        token = new_token()
        expires = now + timedelta(days=self.config.agreements.invitation_days)
        updated = await self.store.update_agreement(
            agreement_id, expect_states=[AgreementState.ACTIVE], renewal_months=duration_months,
            consent_token_hash=hash_token(token), consent_expires_at=expires, updated_at=now)
        if updated is None:
            raise Conflict(f"agreement {agreement_id} changed meanwhile", code="state_changed")
        await self._send_invitation(updated, party, token, expires, duration_months)
        return updated

    async def terminate_by_party(self, agreement_id: int, party: Party) -> Agreement:
        agreement = await self.get_for_party(agreement_id, party.id)
        if agreement.state not in PENDING:
            raise Conflict(f"agreement {agreement_id} is {agreement.state.value} already",
                           code="already_ended")
        ended = await self._end(agreement, AgreementState.TERMINATED_BY_THIRD_PARTY,
                                f"terminated by {party.name}", by="third_party")
        if ended is None:
            raise Conflict(f"agreement {agreement_id} changed meanwhile", code="state_changed")
        return ended

    # -- customer side (token links) ----------------------------------------------------------

    async def consent_view(self, token: str) -> ConsentView | None:
        """What the consent page shows, or None when the link is unknown, used or expired."""
        agreement = await self.store.agreement_by_token("consent_token_hash", hash_token(token))
        if agreement is None or agreement.state not in PENDING:
            return None
        if agreement.consent_expires_at is None or agreement.consent_expires_at <= self.clock.now():
            return None
        party = await self.store.get_party(agreement.party_id)
        if party is None:
            return None
        renewal = agreement.state is AgreementState.ACTIVE
        months = agreement.renewal_months if renewal and agreement.renewal_months else \
            agreement.duration_months
        return ConsentView(agreement, party, renewal, months)

    async def decide(self, token: str, accept: bool) -> tuple[Agreement, str] | None:
        """The customer's answer; the link is spent either way. None: link not valid (any more)."""
        view = await self.consent_view(token)
        if view is None:
            return None
        now = self.clock.now()
        agreement = view.agreement
        spent: dict[str, object] = {"consent_token_hash": None, "consent_expires_at": None,
                                    "updated_at": now}
        terminate_token = new_token()
        accepted = {"ends_at": add_months(now, view.months), "duration_months": view.months,
                    "terminate_token_hash": hash_token(terminate_token)}
        values: dict[str, Any]
        if view.renewal and accept:
            outcome, expect = "renewed", AgreementState.ACTIVE
            values = {**spent, **accepted, "renewal_months": None, "reminders_sent": 0,
                      "event": ("agreement.renewed", {"duration_months": view.months})}
        elif view.renewal:
            outcome, expect = "renewal_declined", AgreementState.ACTIVE
            values = {**spent, "renewal_months": None,
                      "event": ("agreement.renewal_declined", {"by": "customer"})}
        elif accept:
            outcome, expect = "accepted", AgreementState.INVITED
            values = {**spent, **accepted, "state": AgreementState.ACTIVE.value,
                      "accepted_at": now, "starts_at": now,
                      "event": ("agreement.accepted", {"duration_months": view.months})}
        else:
            outcome, expect = "rejected", AgreementState.INVITED
            values = {**spent, "state": AgreementState.REJECTED.value, "ended_at": now,
                      "end_reason": "rejected by the customer", "event": ("agreement.rejected", {})}
        # The link itself is part of the compare-and-set: two clicks, one winner.
        updated = await self.store.update_agreement(
            agreement.id, expect_states=[expect], expect={"consent_token_hash": hash_token(token)},
            **values)
        if updated is None:
            return None
        if accept:
            await self._send_confirmation(updated, view.party, terminate_token)
        log.info("agreement %s %s by the customer", agreement.id, outcome)
        return updated, outcome

    async def termination_view(self, token: str) -> tuple[Agreement, Party] | None:
        agreement = await self.store.agreement_by_token("terminate_token_hash", hash_token(token))
        if agreement is None or agreement.state is not AgreementState.ACTIVE:
            return None
        party = await self.store.get_party(agreement.party_id)
        return None if party is None else (agreement, party)

    async def terminate_by_customer(self, token: str) -> Agreement | None:
        found = await self.termination_view(token)
        if found is None:
            return None
        return await self._end_by_customer(found[0])

    async def terminate_for_customer(self, agreement_id: int, email: str) -> Agreement | None:
        """The customer's page (its link stands for `email`): end one of their active agreements.
        None when the agreement is not theirs, not active, or ended meanwhile."""
        agreement = await self.store.get_agreement(agreement_id)
        if (agreement is None or agreement.customer_email.lower() != email.lower()
                or agreement.state is not AgreementState.ACTIVE):
            return None
        return await self._end_by_customer(agreement)

    async def _end_by_customer(self, agreement: Agreement) -> Agreement | None:
        # The customer ended it themselves: they see it at once, no email about it.
        return await self._end(agreement, AgreementState.TERMINATED_BY_CUSTOMER,
                               "terminated by the customer", notify_customer=False, by="customer")

    async def send_customer_link(self, email: str, lang: str) -> bool:
        """Mail the customer's page link to `email` if the address is on record (a premise's
        customer contact or an agreement's); False (and nothing sent) otherwise. The page that asks
        says the same either way."""
        if self.customer_link is None or not await self.store.customer_email_known(email):
            return False
        # One link mail per address per interval, whoever asks: the form cannot flood a mailbox.
        since = self.clock.now() - CUSTOMER_LINK_MAIL_INTERVAL
        if await self.store.mails_queued_since(email, list(CUSTOMER_LINK_SUBJECTS.values()), since):
            return False
        template = "customer_link.es.txt" if lang == "es" else "customer_link.txt"
        subject = CUSTOMER_LINK_SUBJECTS["es" if lang == "es" else "en"]
        days = self.config.pages.customer_link_days
        await self._mail(email, subject, template, lang, days=days)
        return True

    # -- system side --------------------------------------------------------------------------

    async def terminate_for_premise(self, esi_id: str, reason: str, *, by: str = "system") -> list[Agreement]:
        """The premise was removed or the customer moved out: end every agreement covering it.
        `by` (in the `agreement.terminated` event): `operator` when the operator did it through
        the API, `system` when the gateway found it (a premise import's new customer of record)."""
        ended = []
        for agreement in await self.store.agreements_for_premise(esi_id, states=PENDING):
            done = await self._end(agreement, AgreementState.TERMINATED_BY_SYSTEM,
                                   f"{reason} (ESI ID {esi_id})", by=by)
            if done is not None:
                ended.append(done)
        return ended

    async def run_lifecycle(self) -> LifecycleReport:
        """Expire invitations, lapse unanswered renewals, complete ended terms, send reminders.

        Several instances run it at once (each its own timer): every change is a compare-and-set,
        so each has one winner, and the mail a change sends is stored in the change's transaction
        (sent once that commits; by the mail queue if the instance dies first): each reminder and
        end-of-term mail is sent once whichever instances run, and never lost. Chosen over one
        runner under an advisory lock: it needs nothing PostgreSQL-only (SQLite runs the same
        code), and a runner that dies holds nothing up. The cost is that instances read the same
        due agreements; the losers' updates change no row."""
        now = self.clock.now()
        expired = completed = reminded = lapsed = 0
        for agreement in await self.store.agreements_due(
                state=AgreementState.INVITED, column="consent_expires_at", before=now):
            if await self.store.update_agreement(
                    agreement.id, expect_states=[AgreementState.INVITED],
                    state=AgreementState.EXPIRED.value, consent_token_hash=None,
                    consent_expires_at=None, ended_at=now, end_reason="invitation expired",
                    updated_at=now, event=("agreement.expired", {"reason": "invitation expired"})):
                expired += 1
        for agreement in await self.store.agreements_due(
                state=AgreementState.ACTIVE, column="consent_expires_at", before=now):
            if await self.store.update_agreement(
                    agreement.id, expect_states=[AgreementState.ACTIVE], consent_token_hash=None,
                    consent_expires_at=None, renewal_months=None, updated_at=now,
                    event=("agreement.renewal_declined", {"by": "system"})):  # unanswered in time
                lapsed += 1
        for agreement in await self.store.agreements_due(
                state=AgreementState.ACTIVE, column="ends_at", before=now + timedelta(seconds=1)):
            if agreement.ends_at is not None and agreement.ends_at <= now:
                async with self._one_transaction():  # the end and its mail, or neither
                    done = await self._end(agreement, AgreementState.COMPLETED,
                                           "the agreed term is over", at=agreement.ends_at, by=None)
                completed += done is not None
        days = self.config.agreements.reminder_days_before
        if days:
            horizon = now + timedelta(days=days[0])
            for agreement in await self.store.agreements_due(
                    state=AgreementState.ACTIVE, column="ends_at", before=horizon):
                assert agreement.ends_at is not None
                due = sum(1 for d in days if agreement.ends_at - timedelta(days=d) <= now)
                if due > agreement.reminders_sent:
                    async with self._one_transaction():  # the count and the mail, or neither
                        updated = await self.store.update_agreement(
                            agreement.id, expect_states=[AgreementState.ACTIVE],
                            expect={"reminders_sent": agreement.reminders_sent},
                            reminders_sent=due, updated_at=now, event=("agreement.renewal_due", {
                                "reminder": due, "days_left": max(0, (agreement.ends_at - now).days)}))
                        if updated is not None:
                            await self._send_reminder(updated)
                    reminded += updated is not None
        sent, failed = await self.mail_sender.deliver_due()
        await self.store.purge_idempotent(now - IDEMPOTENCY_KEY_LIFETIME)
        return LifecycleReport(expired, completed, reminded, lapsed, sent, failed)

    # -- internals ----------------------------------------------------------------------------

    def _one_transaction(self) -> contextlib.AbstractAsyncContextManager[object]:
        """One transaction for the store calls of the block (a unit of work: mails stored in it go
        out after it commits), or the caller's, when it runs inside one already (an API request
        with an Idempotency-Key)."""
        if joined_connection() is not None:
            return contextlib.nullcontext()
        return self.store.unit_of_work()

    async def _end(self, agreement: Agreement, state: AgreementState, reason: str, *, by: str | None,
                   at: datetime | None = None, notify_customer: bool = True) -> Agreement | None:
        """End the agreement (compare-and-set) with its event: `agreement.terminated` naming who
        ended it (`by`), or `agreement.completed` (by None: its term ran out)."""
        assert state in ENDED_STATES
        now = self.clock.now()
        event = ("agreement.completed", {"reason": reason}) if by is None else \
            ("agreement.terminated", {"by": by, "reason": reason})
        ended = await self.store.update_agreement(
            agreement.id, expect_states=PENDING, state=state.value, ended_at=at or now,
            end_reason=reason, consent_token_hash=None, consent_expires_at=None,
            terminate_token_hash=None, renewal_months=None, updated_at=now, event=event)
        if ended is not None and notify_customer and agreement.state is AgreementState.ACTIVE:
            party = await self.store.get_party(ended.party_id)
            if party is not None:
                lang = ended.customer_language
                await self._mail(ended.customer_email,
                                 tr_in(lang, "Your agreement with %(party)s has ended", party=party.name),
                                 "ended.txt", lang, agreement=ended, party=party,
                                 purpose=purpose(ended), reason=reason, state=state.value)
        return ended

    def _link(self, path: str) -> str:
        return f"{self.config.server.public_url}{path}"

    async def _mail(self, to: str, subject: str, template: str, lang: str = "en", **context: object) -> None:
        """A mail from `template` in `lang` (its `_()` texts from the catalogues)."""
        manage_link = self.customer_link(to) if self.customer_link is not None else None
        text = page_templates(lang).get_template(template).render(manage_link=manage_link, lang=lang, **context)
        await self.mail_sender.send(to=to, subject=subject, text=text)

    async def _send_invitation(self, agreement: Agreement, party: Party, token: str,
                               expires: datetime, months: int) -> None:
        lang = agreement.customer_language
        renewal = agreement.state is AgreementState.ACTIVE
        subject = (tr_in(lang, "%(party)s asks you to renew your consent", party=party.name) if renewal
                   else tr_in(lang, "%(party)s asks for your consent", party=party.name))
        await self._mail(agreement.customer_email, subject, "invitation.txt", lang,
                         agreement=agreement, party=party, purpose=purpose(agreement),
                         months=months, link=self._link(f"/consent/{token}"),
                         expires=f"{expires:%Y-%m-%d %H:%M} UTC")

    async def _send_confirmation(self, agreement: Agreement, party: Party, token: str) -> None:
        lang = agreement.customer_language
        await self._mail(agreement.customer_email,
                         tr_in(lang, "You accepted %(party)s's agreement %(id)s", party=party.name, id=agreement.id),
                         "confirmation.txt", lang, agreement=agreement, party=party,
                         purpose=purpose(agreement), ends=f"{agreement.ends_at:%Y-%m-%d}",
                         terminate_link=self._link(f"/agreements/terminate/{token}"))

    async def _send_reminder(self, agreement: Agreement) -> None:
        party = await self.store.get_party(agreement.party_id)
        if party is None:
            return
        lang = agreement.customer_language
        ends = f"{agreement.ends_at:%Y-%m-%d}"
        await self._mail(agreement.customer_email,
                         tr_in(lang, "Your agreement with %(party)s ends on %(date)s", party=party.name, date=ends),
                         "reminder.txt", lang, agreement=agreement, party=party, purpose=purpose(agreement), ends=ends)
