"""An OAuth 2.0 authorization server for development and tests: the client-credentials grant
(RFC 6749 §4.4) issuing RFC 9068 JWT access tokens, with discovery and key rotation."""
