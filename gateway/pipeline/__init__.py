"""The HAN request pipeline (issue 5): validation, arbitration, the durable delivery queue and its
dispatcher, inbound device answers, request status and webhooks."""
