"""risk-service: pre-trade risk checks, positions and P&L from fills, per-account kill switch."""
