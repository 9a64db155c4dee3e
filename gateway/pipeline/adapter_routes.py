"""`[routes] kind = "adapters"`: one AMS head-end adapter per configured TDSP, each reaching the
premises whose ESI IDs carry that TDSP's prefixes (gateway.domain.esi_id.TDSP_PREFIXES).

A TDSP without a `[routes.tdsp.<name>]` table gets no route: its premises' items wait, retried
with backoff, until they expire — never sent somewhere else.
"""

from __future__ import annotations

from ams_adapters.adapter import HeadEndAdapter
from ams_adapters.contract import Route
from ams_adapters.factory import AdapterConfig, make_adapter
from ams_adapters.tracking import ItemLookup
from gateway.domain.esi_id import TDSP_PREFIXES
from gateway.pipeline.config import RoutesConfig, TdspRouteConfig
from gateway.pipeline.dispatcher import RouteSet


def adapter_config(profile_name: str, cfg: TdspRouteConfig) -> AdapterConfig:
    """`[routes.tdsp.<name>]` as the adapter factory takes it (empty strings mean "not set")."""
    return AdapterConfig(
        tdsp=profile_name, transport=cfg.transport or None, url=cfg.url, callback_host=cfg.callback_host,
        callback_port=cfg.callback_port, public_callback_url=cfg.public_callback_url or None,
        callback_cert_file=cfg.callback_cert_file or None, callback_key_file=cfg.callback_key_file or None,
        host=cfg.host, port=cfg.port, topic_prefix=cfg.topic_prefix, client_id=cfg.client_id or None,
        share_group=cfg.share_group or None, session_expiry_s=cfg.session_expiry_seconds,
        ca_file=cfg.ca_file or None, profile_overrides=dict(cfg.profile))


def build_adapter_routes(config: RoutesConfig, items: ItemLookup | None = None,
                         ) -> tuple[RouteSet, dict[str, HeadEndAdapter]]:
    """The RouteSet (by ESI ID prefix) and the adapters by profile name. Adapters are started by
    the dispatcher (`Route.start`), not here. `items` (the gateway's `StoredItems`) lets every
    adapter apply a head-end's notice about any item the gateway handed to a route, whichever
    instance submitted it (route_items.py); without it such notices are dropped."""
    adapters = {name: make_adapter(adapter_config(name, cfg), items) for name, cfg in config.tdsp.configured().items()}
    # A TDSP's name is its profile's and its `[routes.tdsp.<name>]` table's (tests/gateway/test_tdsp_names.py).
    by_prefix: dict[str, Route | None] = {row.prefix: adapters.get(row.tdsp.value) for row in TDSP_PREFIXES}
    return RouteSet(None, by_prefix), adapters
