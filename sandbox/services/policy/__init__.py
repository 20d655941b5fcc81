"""policy-service: venue policy checks for an order, listing every violation with a stable code."""
