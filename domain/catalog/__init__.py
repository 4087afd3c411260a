"""The catalog: plans with their price history, coupons and tax rates, each an aggregate."""
