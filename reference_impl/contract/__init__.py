"""The gateway's contract: `openapi.yaml` (OpenAPI 3.2, written by hand, first) and
`asyncapi.yaml` (the WebSocket chat), read by `schemas`; the checks that hold the code to them
(`validate`, `asyncapi_validate`) and the offline documentation page rendered from the first
(`docs_page`). Import those modules directly; this package itself imports nothing.
"""
