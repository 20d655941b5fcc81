"""auth-service: users and roles, Ed25519-signed access tokens, refresh tokens, sessions in Redis, JWKS."""
