"""Webhooks: endpoints, deliveries and the rules of what is sent, when."""
