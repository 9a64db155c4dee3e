"""A Mosquitto of one's own with the dynamic-security plugin: the broker the MQTT API's tests, its
benchmark and a trial set-up run against (`mosquitto` and `mosquitto_ctrl` from the Debian package).

`start_dynsec_broker(directory)` initialises a dynsec file with an admin client
(`mosquitto_ctrl dynsec init`), starts `mosquitto` on a free loopback port with the plugin and no
anonymous access, and returns once the port accepts connections.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.ports import free_port

PLUGIN_PATHS = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
)


class BrokerUnavailable(RuntimeError):
    pass


def plugin_path() -> str:
    for path in PLUGIN_PATHS:
        if Path(path).exists():
            return path
    raise BrokerUnavailable(f"mosquitto_dynamic_security.so not found in {', '.join(PLUGIN_PATHS)} "
                            "(Debian: apt-get install mosquitto)")


@dataclass
class DynsecBroker:
    host: str
    port: int
    admin_username: str
    admin_password: str
    directory: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_dynsec_broker(directory: Path, *, admin_username: str = "hangw-admin") -> DynsecBroker:
    for tool in ("mosquitto", "mosquitto_ctrl"):
        if shutil.which(tool) is None:
            raise BrokerUnavailable(f"{tool} is not installed (Debian: apt-get install mosquitto mosquitto-clients)")
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    dynsec_file = directory / "dynamic-security.json"
    subprocess.run(["mosquitto_ctrl", "dynsec", "init", str(dynsec_file), admin_username, password],
                   check=True, capture_output=True, timeout=10)
    port = free_port()
    conf = directory / "mosquitto.conf"
    # Started by root, mosquitto drops to the `mosquitto` user, which may not reach `directory` (e.g.
    # pytest's private temporary directories): it stays the user who started it.
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"{user}listener {port} 127.0.0.1\nallow_anonymous false\npersistence false\nset_tcp_nodelay true\n"
                    f"plugin {plugin_path()}\nplugin_opt_config_file {dynsec_file}\n"
                    f"log_dest file {directory / 'mosquitto.log'}\nlog_type all\n")
    return _launch(DynsecBroker("127.0.0.1", port, admin_username, password, directory, _start(conf)))


def start_plain_broker(directory: Path) -> DynsecBroker:
    """A Mosquitto of one's own without the plugin: anonymous clients, Nagle's algorithm off (what a
    head-end's 61968-9 broker should be; Debian's default config leaves Nagle on). No admin: its
    username and password are empty."""
    if shutil.which("mosquitto") is None:
        raise BrokerUnavailable("mosquitto is not installed (Debian: apt-get install mosquitto)")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = directory / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"{user}listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"set_tcp_nodelay true\nlog_dest file {directory / 'mosquitto.log'}\n")
    return _launch(DynsecBroker("127.0.0.1", port, "", "", directory, _start(conf)))


def _start(conf: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ})


def _launch(broker: DynsecBroker) -> DynsecBroker:
    """`broker` once its port accepts connections."""
    process, port = broker.process, broker.port
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerUnavailable(f"mosquitto exited ({process.returncode}): {broker.log()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return broker
        except OSError:
            time.sleep(0.05)
    broker.stop()
    raise BrokerUnavailable(f"mosquitto did not listen on {port} within 10 s")
