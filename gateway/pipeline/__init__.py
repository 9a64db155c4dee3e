"""The HAN request pipeline (issue 5): validation, arbitration, the durable outbox and its
dispatcher, inbound device answers, request status and webhooks."""
