"""Build a TDSP's adapter from config: the TDSP's profile picks the transport (AEP's two
companies name theirs in config), the endpoint settings say where the head-end is."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ams_adapters.adapter import HeadEndAdapter, Transport
from ams_adapters.contract import ContractError, MeterCapabilities
from ams_adapters.profiles import TRANSPORTS, TdspProfile, load_profile
from ams_adapters.tracking import ItemLookup
from ams_adapters.transports.binary_tcp import BinaryTransport
from ams_adapters.transports.cim_mqtt import CimMqttTransport
from ams_adapters.transports.multispeak import MultiSpeakTransport


@dataclass(frozen=True, slots=True)
class AdapterConfig:
    tdsp: str
    transport: str | None = None
    """Overrides the profile's transport (AEP Texas Central/North take theirs from config)."""
    url: str = ""
    """MultiSpeak: base URL of the head-end (HAN_Server and DR_Server below it)."""
    callback_host: str = "127.0.0.1"
    callback_port: int = 0
    public_callback_url: str | None = None
    callback_cert_file: str | None = None
    callback_key_file: str | None = None
    """MultiSpeak: certificate chain and key of the NOT_Server callback endpoint; with both set it
    serves HTTPS (and the responseURL it registers is https://)."""
    host: str = "127.0.0.1"
    """CIM: the MQTT broker; binary: the head-end."""
    port: int = 0
    topic_prefix: str = "hangw"
    client_id: str | None = None
    share_group: str | None = None
    """CIM: the MQTT 5 shared-subscription group of the instances that share the head-end's events."""
    session_expiry_s: int = 3600
    ca_file: str | None = None
    """MultiSpeak over HTTPS: the CA bundle that signs the head-end's certificate (default: the
    system's trust store for https:// URLs)."""
    profile_overrides: Mapping[str, Any] = field(default_factory=dict)
    meter_overrides: Mapping[str, MeterCapabilities] = field(default_factory=dict)


def callback_tls(cfg: AdapterConfig) -> ssl.SSLContext | None:
    """The server-side TLS context of the MultiSpeak callback endpoint, or None (plain HTTP)."""
    if bool(cfg.callback_cert_file) != bool(cfg.callback_key_file):
        raise ContractError("callback_cert_file", cfg.callback_cert_file,
                            "set together with callback_key_file (both or neither)")
    if not cfg.callback_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cfg.callback_cert_file, cfg.callback_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ContractError("callback_cert_file", cfg.callback_cert_file,
                            f"a readable PEM certificate chain matching callback_key_file ({exc})") from None
    return context


def make_transport(profile: TdspProfile, cfg: AdapterConfig) -> Transport:
    t = profile.transport
    if t == "multispeak":
        if not cfg.url:
            raise ContractError("url", cfg.url, "the MultiSpeak head-end's base URL (http[s]://host:port)")
        tls = ssl.create_default_context(cafile=cfg.ca_file) if cfg.url.startswith("https:") else None
        return MultiSpeakTransport(cfg.url, callback_host=cfg.callback_host, callback_port=cfg.callback_port,
                                   public_callback_url=cfg.public_callback_url, timeout_s=profile.request_timeout_s,
                                   max_connections=profile.batch_size, ssl_context=tls,
                                   callback_ssl_context=callback_tls(cfg),
                                   group_operations=profile.group_operations, max_group_size=profile.batch_size)
    if t == "cim":
        return CimMqttTransport(cfg.host, cfg.port or 1883, cfg.topic_prefix, client_id=cfg.client_id,
                                timeout_s=profile.request_timeout_s, share_group=cfg.share_group,
                                session_expiry_s=cfg.session_expiry_s)
    if t == "binary":
        if not cfg.port:
            raise ContractError("port", cfg.port, "the binary head-end's TCP port (1..65535)")
        return BinaryTransport(cfg.host, cfg.port, poll_interval_s=profile.poll_interval_s,
                               timeout_s=profile.request_timeout_s)
    raise ContractError("transport", t, f"one of {TRANSPORTS}")


def make_adapter(cfg: AdapterConfig, items: ItemLookup | None = None) -> HeadEndAdapter:
    """The adapter of `cfg`; `items` resolves notices about transactions it does not hold in memory
    (submitted before a restart or by another gateway instance: ams_adapters/tracking.py)."""
    profile = load_profile(cfg.tdsp, **dict(cfg.profile_overrides))
    if cfg.transport is not None:
        profile = profile.with_transport(cfg.transport)
    return HeadEndAdapter(profile, make_transport(profile, cfg), meter_overrides=dict(cfg.meter_overrides),
                          items=items)
