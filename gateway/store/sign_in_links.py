"""One-time dashboard sign-in links (table `page_sign_in_links`, migration 0025).

The link's token (256 random bits) is mailed and never stored: the table keeps its SHA-256, like
API tokens' (gateway/store/parties.py). A link is redeemed once (`used_at` set in the same
statement that checks it is unused and unexpired, so two clicks at once sign in once), and a
session made with it stays signed in while the party is active (`party_of_link`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.model import PartyStatus
from gateway.store.parties import hash_token, new_token
from gateway.store.schema import page_sign_in_links, parties

LIVE_LINKS_PER_PARTY = 5  # unused, unexpired links at once: the form cannot flood the contact's mailbox


@dataclass(frozen=True)
class Redeemed:
    link_id: int
    party_id: int


async def active_party_by_contact(engine: AsyncEngine, email: str) -> int | None:
    """The active party whose contact address is `email` (any case); None if none or several."""
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(parties.c.id).where(
            sa.func.lower(parties.c.contact_email) == email.strip().lower(),
            parties.c.status == PartyStatus.ACTIVE.value).limit(2))).all()
    return rows[0].id if len(rows) == 1 else None


async def issue(engine: AsyncEngine, party_id: int, now: datetime, lifetime: timedelta) -> str | None:
    """A new link token for the party, or None if it already has LIVE_LINKS_PER_PARTY live ones."""
    token = new_token()
    async with engine.begin() as conn:
        live = (await conn.execute(sa.select(sa.func.count()).where(
            page_sign_in_links.c.party_id == party_id, page_sign_in_links.c.used_at.is_(None),
            page_sign_in_links.c.expires_at > now))).scalar() or 0
        if live >= LIVE_LINKS_PER_PARTY:
            return None
        await conn.execute(page_sign_in_links.insert().values(
            party_id=party_id, token_hash=hash_token(token), created_at=now, expires_at=now + lifetime))
    return token


async def redeem(engine: AsyncEngine, token: str, now: datetime) -> Redeemed | None:
    """Use the link once: its party, if the token is known, unused, unexpired and the party active."""
    t = page_sign_in_links
    active = sa.select(parties.c.id).where(parties.c.id == t.c.party_id,
                                           parties.c.status == PartyStatus.ACTIVE.value).exists()
    async with engine.begin() as conn:
        row = (await conn.execute(t.update().where(
            t.c.token_hash == hash_token(token), t.c.used_at.is_(None), t.c.expires_at > now, active)
            .values(used_at=now).returning(t.c.id, t.c.party_id))).first()
    return Redeemed(row.id, row.party_id) if row is not None else None


async def party_of_link(engine: AsyncEngine, link_id: int) -> int | None:
    """The party a used link signed in, while that party is active (a suspension ends the session)."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(parties.c.id).select_from(
            page_sign_in_links.join(parties, parties.c.id == page_sign_in_links.c.party_id)).where(
            page_sign_in_links.c.id == link_id, page_sign_in_links.c.used_at.is_not(None),
            parties.c.status == PartyStatus.ACTIVE.value))).first()
    return row.id if row is not None else None
