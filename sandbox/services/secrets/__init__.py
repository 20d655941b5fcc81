"""secrets-service: Kraken API key pairs per account, encrypted at rest, with audited reveal and key rotation."""
