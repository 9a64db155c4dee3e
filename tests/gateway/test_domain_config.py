"""ESI ID -> TDSP derivation, month arithmetic, config validation and `hangw config check`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.clock import add_months
from gateway.config import ConfigError, load_config, parse_config
from gateway.domain.esi_id import EsiIdError, Tdsp, tdsp_for_esi_id


@pytest.mark.parametrize(("esi_id", "tdsp"), [
    ("10443720000000001", Tdsp.ONCOR),
    ("10176990000000001", Tdsp.ONCOR),
    ("1008901000000000000001", Tdsp.CENTERPOINT),
    ("10032780000000001", Tdsp.AEP_CENTRAL),
    ("10204040000000001", Tdsp.AEP_NORTH),
    ("10400510000000001", Tdsp.TNMP),
])
def test_tdsp_from_prefix(esi_id: str, tdsp: Tdsp) -> None:
    assert tdsp_for_esi_id(esi_id) is tdsp


@pytest.mark.parametrize(("esi_id", "code", "words"), [
    ("1008901000000000001", "esi_id_wrong_length", "22 digits"),
    ("104437200000000011", "esi_id_wrong_length", "17 digits, this one has 18"),
    ("10443720000000O01", "esi_id_not_digits", "digits only"),
    ("", "esi_id_not_digits", "digits only"),
    ("１０４４３７２００００００００01", "esi_id_not_digits", "digits only"),  # full-width
    ("10999990000000001", "esi_id_unknown_tdsp", "prefix 1099999"),
])
def test_bad_esi_ids(esi_id: str, code: str, words: str) -> None:
    with pytest.raises(EsiIdError) as caught:
        tdsp_for_esi_id(esi_id)
    assert caught.value.code == code and words in caught.value.reason
    assert caught.value.field == "esi_id" and caught.value.value == esi_id


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2027, 11, 30, tzinfo=UTC), 3) == datetime(2028, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2026, 5, 15, tzinfo=UTC), 12) == datetime(2027, 5, 15, tzinfo=UTC)


def test_env_overrides_and_problems() -> None:
    config = parse_config({"server": {"port": 8000}},
                          env={"HANGW_SERVER__PORT": "9001", "HANGW_MAIL__SMTP_HOST": "mx.test",
                               "HANGW_AGREEMENTS__REMINDER_DAYS_BEFORE": "[7, 30]",
                               "OTHER": "x"})
    assert config.server.port == 9001 and config.mail.smtp_host == "mx.test"
    assert config.agreements.reminder_days_before == [30, 7]
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": {"port": 70000, "public_url": "ftp://x"},
                      "storage": {"url": "mysql://x"}, "colour": "blue"}, env={})
    problems = {p.key: p for p in caught.value.problems}
    assert set(problems) == {"server.port", "server.public_url", "storage.url", "colour"}
    assert problems["server.port"].value == 70000
    assert problems["colour"].message == "unknown key"


def test_a_removed_key_says_what_became_of_it() -> None:
    """`pipeline.route_concurrency` went when routes took over batching and pacing their head-ends."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"pipeline": {"route_concurrency": 4}}, env={})
    (problem,) = caught.value.problems
    assert problem.key == "pipeline.route_concurrency" and problem.value == 4
    assert problem.message.startswith("removed: each route batches and paces")


def test_config_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.toml"
    good.write_text('data_dir = "/var/lib/hangw"\n[server]\nport = 8080\n')
    assert main(["config", "check", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "eighty"\n[mail]\nsmtp_tls = "maybe"\nsmtp_hots = "x"\n')
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "server.port = 'eighty'" in err
    assert "mail.smtp_tls = 'maybe'" in err
    assert "mail.smtp_hots = 'x': unknown key" in err
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    assert main(["config", "check", str(broken)]) == 1
    assert "(syntax)" in capsys.readouterr().err
    monkeypatch.setenv("HANGW_SERVER__PORT", "-1")
    assert main(["config", "check", str(good)]) == 1
    assert "server.port = -1" in capsys.readouterr().err
    monkeypatch.delenv("HANGW_SERVER__PORT")
    assert load_config(good).data_dir == Path("/var/lib/hangw")


def test_config_show_masks_the_device_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography.fernet import Fernet

    secret = Fernet.generate_key().decode()
    path = tmp_path / "c.toml"
    path.write_text(f'[security]\ndevice_key_secret = "{secret}"\n')
    assert main(["config", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert secret not in out and '"device_key_secret": "***"' in out
