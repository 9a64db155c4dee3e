"""`hangw admin …`: operator tasks straight on the store (no running server needed).

register a third party, issue/revoke tokens, add technicians, import premises, list agreements,
apply migrations.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from tqdm import tqdm

from gateway.agreements import AgreementService
from gateway.clock import SystemClock
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.domain.model import AgreementState, Role
from gateway.mail import make_mailer
from gateway.mqtt_api.topics import Topics
from gateway.premise_import import HeaderError, import_premises
from gateway.rendering import make_templates
from gateway.store.store import Store, open_store


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("admin", help="operator tasks: parties, tokens, premises, "
                                   "agreements")
    parser.add_argument("-c", "--config", type=Path, help="TOML config file")
    sub = parser.add_subparsers(dest="admin_command", metavar="TASK", required=True)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.set_defaults(func=_runner(_migrate))

    party = sub.add_parser("party", help="third parties").add_subparsers(
        dest="party_command", metavar="ACTION", required=True)
    p = party.add_parser("add", help="register a third party")
    p.add_argument("--name", required=True)
    p.add_argument("--duns", required=True, help="9-digit DUNS number")
    p.add_argument("--contact-email", required=True)
    p.set_defaults(func=_runner(_party_add))
    p = party.add_parser("list", help="list third parties")
    p.set_defaults(func=_runner(_party_list))
    p = party.add_parser("mqtt-credentials", help="issue a party's MQTT API broker credentials (the password is "
                         "printed once), or rotate or revoke them ([mqtt_api] in the config)")
    p.add_argument("--party", type=int, required=True, metavar="PARTY_ID")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--rotate", action="store_true", help="new credentials; the live ones stop working at once")
    what.add_argument("--revoke", action="store_true", help="delete them on the broker (connections are dropped)")
    p.set_defaults(func=_runner(_party_mqtt_credentials))

    tech = sub.add_parser("technician", help="field technicians").add_subparsers(
        dest="technician_command", metavar="ACTION", required=True)
    p = tech.add_parser("add", help="register a field technician")
    p.add_argument("--name", required=True)
    p.add_argument("--email", required=True)
    p.set_defaults(func=_runner(_technician_add))
    p = tech.add_parser("assign", help="assign a premise to a technician")
    p.add_argument("technician_id", type=int)
    p.add_argument("esi_id")
    p.set_defaults(func=_runner(_technician_assign))

    token = sub.add_parser("token", help="API tokens").add_subparsers(
        dest="token_command", metavar="ACTION", required=True)
    p = token.add_parser("issue", help="issue a token (printed once)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--party", type=int, metavar="PARTY_ID")
    who.add_argument("--technician", type=int, metavar="TECHNICIAN_ID")
    who.add_argument("--operator", action="store_true")
    p.add_argument("--label", default="cli")
    p.set_defaults(func=_runner(_token_issue))
    p = token.add_parser("revoke", help="revoke a token by its credential id")
    p.add_argument("credential_id", type=int)
    p.set_defaults(func=_runner(_token_revoke))
    p = token.add_parser("list", help="list credentials (never the tokens)")
    p.add_argument("--party", type=int, metavar="PARTY_ID")
    p.set_defaults(func=_runner(_token_list))

    prem = sub.add_parser("premises", help="premises").add_subparsers(
        dest="premises_command", metavar="ACTION", required=True)
    p = prem.add_parser("import", help="import premises from a CSV file (re-import updates)")
    p.add_argument("file", type=Path)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_runner(_premises_import))

    p = sub.add_parser("device-key", help="make a key for [security] device_key_secret (link keys "
                       "are stored encrypted with it)")
    p.add_argument("--write", type=Path, metavar="FILE", help="write it to FILE (mode 600, for "
                   "device_key_file) instead of printing it; refuses to overwrite")
    p.set_defaults(func=_device_key)

    p = sub.add_parser("mail", help="mail queue: pending, sent and given-up emails")
    p.set_defaults(func=_runner(_mail_status))

    agr = sub.add_parser("agreements", help="agreements").add_subparsers(
        dest="agreements_command", metavar="ACTION", required=True)
    p = agr.add_parser("list", help="list agreements")
    p.add_argument("--party", type=int, metavar="PARTY_ID")
    p.add_argument("--state", action="append", choices=[s.value for s in AgreementState])
    p.add_argument("--esi-id")
    p.set_defaults(func=_runner(_agreements_list))


Task = Callable[[argparse.Namespace, GatewayConfig, Store], Awaitable[int]]


def _runner(task: Task) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2

        async def main() -> int:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            store = await open_store(config.storage_url)
            try:
                return await task(args, config, store)
            finally:
                await store.close()

        return asyncio.run(main())

    return run


def _device_key(args: argparse.Namespace) -> int:
    from gateway.device_keys import new_device_key

    key = new_device_key()
    if args.write is None:
        print(key)
        return 0
    path: Path = args.write
    try:
        # O_EXCL: an existing key file is never replaced (the stored link keys need it).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(f"--write {path}: {exc.strerror}", file=sys.stderr)
        return 1
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    print(f"device key written to {path}; set [security] device_key_file = \"{path}\"")
    return 0


async def _migrate(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    print(f"schema at revision {await store.schema_revision()}")
    return 0


async def _party_add(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    if not (len(args.duns) == 9 and args.duns.isdigit()):
        print(f"--duns {args.duns!r}: a DUNS number has 9 digits", file=sys.stderr)
        return 2
    if await store.get_party_by_duns(args.duns) is not None:
        print(f"--duns {args.duns}: a party with this DUNS exists", file=sys.stderr)
        return 1
    party = await store.create_party(name=args.name, duns=args.duns,
                                     contact_email=args.contact_email, now=SystemClock().now())
    print(f"party {party.id}: {party.name} (DUNS {party.duns})")
    return 0


async def _party_list(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    cursor = None
    while True:
        page = await store.list_parties(cursor=cursor, limit=500)
        for p in page.items:
            print(f"{p.id}\t{p.duns}\t{p.status.value}\t{p.name}\t{p.contact_email}")
        if page.next_cursor is None:
            return 0
        cursor = page.next_cursor


async def _party_mqtt_credentials(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    from gateway.errors import GatewayError
    from gateway.mqtt_api import credentials
    from gateway.mqtt_api.client import BrokerError
    from gateway.mqtt_api.dynsec import DynsecError

    now = SystemClock().now()
    try:
        if args.revoke:
            for username in await credentials.revoke(store, config.mqtt_api, args.party, now):
                print(f"revoked {username} (deleted on the broker)")
            return 0
        issued = await credentials.issue(store, config.mqtt_api, args.party, now, rotate=args.rotate)
    except GatewayError as exc:
        print(exc.detail, file=sys.stderr)
        return 1
    except (BrokerError, DynsecError) as exc:
        print(f"{exc} (check [mqtt_api] host, port, admin_username, admin_password)", file=sys.stderr)
        return 1
    for username in issued.revoked:
        print(f"revoked {username} (deleted on the broker)", file=sys.stderr)
    root = Topics(config.mqtt_api.topic_root)
    print(f"MQTT credentials {issued.credential.id} for party {args.party} on "
          f"{config.mqtt_api.host}:{config.mqtt_api.port}; the password is shown once:", file=sys.stderr)
    print(f"username: {issued.credential.username}")
    print(f"password: {issued.password}")
    print(f"topics:   {root.party(args.party)}/…  (requests: {root.requests(args.party)})", file=sys.stderr)
    return 0


async def _technician_add(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    tech = await store.create_technician(name=args.name, email=args.email, now=SystemClock().now())
    print(f"technician {tech.id}: {tech.name}")
    return 0


async def _technician_assign(args: argparse.Namespace, config: GatewayConfig,
                             store: Store) -> int:
    if await store.get_technician(args.technician_id) is None:
        print(f"no technician {args.technician_id}", file=sys.stderr)
        return 1
    if await store.get_premise(args.esi_id) is None:
        print(f"ESI ID {args.esi_id}: no such premise loaded", file=sys.stderr)
        return 1
    await store.assign_technician(args.technician_id, args.esi_id)
    print(f"technician {args.technician_id} assigned to {args.esi_id}")
    return 0


async def _token_issue(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    now = SystemClock().now()
    if args.operator:
        cred, token = await store.issue_credential(role=Role.OPERATOR, label=args.label, now=now)
    elif args.party is not None:
        if await store.get_party(args.party) is None:
            print(f"--party {args.party}: no such party", file=sys.stderr)
            return 1
        cred, token = await store.issue_credential(role=Role.THIRD_PARTY, party_id=args.party,
                                                   label=args.label, now=now)
    else:
        if await store.get_technician(args.technician) is None:
            print(f"--technician {args.technician}: no such technician", file=sys.stderr)
            return 1
        cred, token = await store.issue_credential(
            role=Role.FIELD_TECHNICIAN, technician_id=args.technician, label=args.label, now=now)
    print(f"credential {cred.id} ({cred.role.value}); the token is shown once:", file=sys.stderr)
    print(token)
    return 0


async def _token_revoke(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    if not await store.revoke_credential(args.credential_id, SystemClock().now()):
        print(f"credential {args.credential_id}: unknown or revoked already", file=sys.stderr)
        return 1
    print(f"credential {args.credential_id} revoked")
    return 0


async def _token_list(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    page = await store.list_credentials(party_id=args.party, limit=500)
    for c in page.items:
        owner = c.party_id or c.technician_id or "-"
        state = f"revoked {c.revoked_at:%Y-%m-%d}" if c.revoked_at else "live"
        print(f"{c.id}\t{c.role.value}\t{owner}\t{c.token_prefix}…\t{state}\t{c.label}")
    return 0


async def _premises_import(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    clock = SystemClock()
    service = AgreementService(store, make_mailer(config.mail, config.mbox_path), config,
                               make_templates(), clock)
    try:
        with args.file.open(encoding="utf-8-sig", newline="") as counting:
            total = max(0, sum(1 for _ in counting) - 1)  # cheap first pass for the bar
        source = args.file.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    # Streamed line by line (TDSP extracts run to millions of rows); only a chunk is in memory.
    with source, tqdm(total=total, unit="row", disable=args.no_progress, file=sys.stderr) as bar:
        try:
            report = await import_premises(source, store, service, clock, progress=bar.update)
        except HeaderError as exc:
            print(f"{args.file}: {exc}", file=sys.stderr)
            return 2
        except UnicodeDecodeError as exc:
            print(f"{args.file}: not UTF-8 text ({exc})", file=sys.stderr)
            return 2
    for error in report.errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    print(f"{report.rows} rows: {report.created} created, {report.updated} updated, "
          f"{report.unchanged} unchanged, {len({e.row for e in report.errors})} rejected"
          + (f", {report.agreements_ended} agreements ended (move-out)"
             if report.agreements_ended else ""))
    return 1 if report.errors else 0


async def _agreements_list(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    states = [AgreementState(s) for s in args.state] if args.state else None
    cursor = None
    while True:
        page = await store.list_agreements(party_id=args.party, states=states, esi_id=args.esi_id,
                                           cursor=cursor, limit=500)
        for a in page.items:
            esis = ",".join(p.esi_id for p in a.premises)
            ends = f"{a.ends_at:%Y-%m-%d}" if a.ends_at else "-"
            print(f"{a.id}\t{a.party_id}\t{a.kind.value}\t{a.state.value}\t{ends}\t{esis}")
        if page.next_cursor is None:
            return 0
        cursor = page.next_cursor


async def _mail_status(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    counts = await store.mail_counts()
    target = (f"SMTP {config.mail.smtp_host}:{config.mail.smtp_port}" if config.mail.smtp_host
              else f"mbox {config.mbox_path}")
    print(f"mail to {target}: {counts['pending']} pending, {counts['sent']} sent, "
          f"{counts['dead']} given up")
    return 1 if counts["dead"] else 0
