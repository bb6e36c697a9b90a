"""Tenantry plugged into other libraries, on the SDK's side: each talks to the server through
`tenantry.client` and imports no server module. `tenantry.integrations.litellm`: a LiteLLM
callback that asks admission before a call and reports the call after it."""
