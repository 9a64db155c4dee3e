#!/usr/bin/env bash
# Makes sure the real peers the tests talk to are up: Mosquitto on 127.0.0.1:1883 and
# PostgreSQL on 127.0.0.1:5432. Installs them from Debian when missing, starts them when stopped.
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! listening 1883; then
    if [ -f /etc/mosquitto/mosquitto.conf ]; then
        $SUDO /usr/sbin/mosquitto -d -c /etc/mosquitto/mosquitto.conf
    else
        $SUDO /usr/sbin/mosquitto -d -p 1883
    fi
fi
if ! listening 5432; then
    for v in $(ls /etc/postgresql); do
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
fi
for i in $(seq 1 50); do
    if listening 1883 && listening 5432; then exit 0; fi
    sleep 0.2
done
listening 1883 || echo "services: Mosquitto is not listening on 127.0.0.1:1883" >&2
listening 5432 || echo "services: PostgreSQL is not listening on 127.0.0.1:5432" >&2
exit 1
