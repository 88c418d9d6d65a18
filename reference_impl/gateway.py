"""What one gateway app owns: its settings, its model, its admission limits and its metrics.

Every route and every chat connection of an app reads the same `Gateway` from
`app.state.gateway`; two apps in one process (tests, notebooks) share nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .auth_guard import AuthThrottle
from .metrics import Metrics
from .model import FakeModel, Model
from .settings import Settings
from .shared_limits import AdmissionControl, build_admission

if TYPE_CHECKING:
    from .telemetry import Telemetry


@dataclass
class Gateway:
    settings: Settings
    model: Model
    metrics: Metrics = field(default_factory=Metrics)
    # This worker's memory (the default) or Redis, shared by every worker (GATEWAY_REDIS_URL);
    # one interface, awaited on every path, so there is one code path for both.
    admission: AdmissionControl | None = None
    telemetry: Telemetry | None = None  # OpenTelemetry, when on (telemetry.py)
    auth_throttle: AuthThrottle | None = None  # wrong keys per client address (auth_guard.py)

    def __post_init__(self) -> None:
        if self.auth_throttle is None:
            self.auth_throttle = AuthThrottle(self.settings.auth_failures_per_minute)
        if self.admission is None:
            self.admission = build_admission(self.settings, self.metrics)

    @classmethod
    def from_settings(
        cls, settings: Settings, model: Model | None = None, telemetry: Telemetry | None = None
    ) -> Gateway:
        if telemetry is None and settings.telemetry:
            # Imported only when on, so a gateway without telemetry never loads OpenTelemetry.
            from .telemetry import Telemetry

            telemetry = Telemetry()
        return cls(settings, model or build_model(settings), telemetry=telemetry)

    def reject(self, code: str) -> None:
        """Count a request or stream refused or ended with the catalogue's `code`."""
        self.metrics.rejections.labels(code=code).inc()


def build_model(settings: Settings) -> Model:
    """The model named by GATEWAY_MODEL: the fake one, or Amazon Bedrock."""
    if settings.model == "bedrock":
        # Imported here, so the offline course never needs boto3 loaded or AWS credentials.
        from .bedrock import BedrockModel

        return BedrockModel(settings)
    return FakeModel(settings)
