"""The MQTT API for third parties: broker credentials and ACLs (Mosquitto dynamic security), HAN
requests over MQTT 5 and events (docs/third-party-api.md, "MQTT"; docs/operator.md, "The MQTT API")."""
