"""Fake of an external AI image provider with an asynchronous task API."""

# The variable the fake reads its API key from (the stack sets it; --api-key overrides it).
API_KEY_ENV = "PROVIDER_API_KEY"
