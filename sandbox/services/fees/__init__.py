"""fees-service: fee schedules per instrument, 30-day volume tiers from fills, and fee estimates.

Schedules (Kraken AssetPairs ``fees`` = taker and ``fees_maker`` = maker
tiers) come from universe-service and are cached in memory; an account's
30-day USD volume is summed from the fills it receives on Kafka
(``oms.fills``) or over HTTP; ``POST /v1/estimate`` prices an order's fee in
Decimal with the venue's rounding. See docs/services/fees.md.
"""
