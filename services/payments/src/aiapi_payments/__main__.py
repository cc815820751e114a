"""`python -m aiapi_payments`: check the settings, then run the service under the shared runner
until SIGTERM. Its only listener is the internal one (health, metrics); its API is on NATS.

Exit codes: 0 after a graceful stop, 1 when the service failed while running (NATS closed
for good, a task died), 2 when it refused to start (a secret in the settings, a key or
address that does not check out, the wrong chain), 3 when start-up failed otherwise.
"""

from __future__ import annotations

from aiapi_shared.runner import Plan, launch

from aiapi_payments import startup
from aiapi_payments.service import PaymentsService


def plan() -> Plan:
    settings, config = startup.load()
    redact = tuple(startup.secret_values(settings, config))
    return Plan.of(settings, PaymentsService(settings, config), redact=redact)


def main() -> None:
    launch(plan)


if __name__ == "__main__":
    main()
