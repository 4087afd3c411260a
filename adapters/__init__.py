"""Adapters: the domain's ports implemented against the outside world (files, PostgreSQL,
a payment gateway, the wall clock). Only bootstrap.py chooses and builds them."""
