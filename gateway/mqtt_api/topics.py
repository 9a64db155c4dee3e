"""The MQTT API's topic tree, one root per party (docs/third-party-api.md, "MQTT"):

    <root>/parties/<party id>/requests                    the party publishes requests (MQTT 5)
    <root>/parties/<party id>/responses/<anything>        the gateway answers (the request's ResponseTopic)
    <root>/parties/<party id>/requests/<request id>/state retained: the request's latest summary
    <root>/parties/<party id>/events/<type>               events, QoS 1, the webhook payloads

and the dynamic-security ACL that confines each party's client to its own subtree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Topics:
    root: str

    def party(self, party_id: int) -> str:
        return f"{self.root}/parties/{party_id}"

    def requests(self, party_id: int) -> str:
        return f"{self.party(party_id)}/requests"

    def responses_prefix(self, party_id: int) -> str:
        return f"{self.party(party_id)}/responses/"

    def state(self, party_id: int, request_id: int) -> str:
        return f"{self.requests(party_id)}/{request_id}/state"

    def event(self, party_id: int, event_type: str) -> str:
        return f"{self.party(party_id)}/events/{event_type}"

    @property
    def every_party_requests(self) -> str:
        return f"{self.root}/parties/+/requests"

    def party_of_request_topic(self, topic: str) -> int | None:
        """The party whose requests topic `topic` is, or None (not a requests topic)."""
        prefix = f"{self.root}/parties/"
        if not (topic.startswith(prefix) and topic.endswith("/requests")):
            return None
        middle = topic[len(prefix):-len("/requests")]
        return int(middle) if middle.isdigit() and middle == str(int(middle)) else None

    def may_answer_on(self, party_id: int, response_topic: str) -> bool:
        """The gateway answers only under the party's own responses: it may publish anywhere under
        the root, so a party must not point it at another party's topics."""
        prefix = self.responses_prefix(party_id)
        return (response_topic.startswith(prefix) and len(response_topic) > len(prefix)
                and not any(c in response_topic for c in "+#\0"))

    # -- the dynsec roles ----------------------------------------------------------------------
    def party_role(self, party_id: int) -> str:
        return f"hangw-party-{party_id}"

    def party_acls(self, party_id: int) -> list[dict[str, Any]]:
        """A party's client may publish to its requests topic and subscribe to (and receive) its
        responses, request states and events: nothing else. Everything not allowed here is refused
        by the broker's default ACL access (dynsec: publishClientSend and subscribe denied)."""
        base = self.party(party_id)
        acls = [_acl("publishClientSend", self.requests(party_id))]
        for pattern in (f"{base}/responses/#", f"{base}/requests/+/state", f"{base}/events/#"):
            acls += [_acl("subscribePattern", pattern), _acl("publishClientReceive", pattern)]
        acls.append(_acl("unsubscribePattern", f"{base}/#"))
        return acls

    GATEWAY_ROLE = "hangw-gateway"

    def gateway_acls(self) -> list[dict[str, Any]]:
        """The gateway's own client: everything under the root (with the dynsec admin role it
        already holds for $CONTROL)."""
        tree = f"{self.root}/#"
        return [_acl("publishClientSend", tree), _acl("publishClientReceive", tree),
                _acl("subscribePattern", tree), _acl("unsubscribePattern", tree)]


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "allow": True, "priority": 0}
