"""The gateway's contract: `openapi.yaml` (OpenAPI 3.2, written by hand, first), the checks that
hold the code to it (`validate`) and the offline documentation page rendered from it
(`docs_page`). Import those modules directly; this package itself imports nothing heavy.
"""

from pathlib import Path

CONTRACT_PATH = Path(__file__).with_name("openapi.yaml")
