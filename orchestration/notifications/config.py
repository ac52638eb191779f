"""The numbers outbound webhooks run by (from settings; see docs/webhooks.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestration.notifications.addresses import IPNetwork
from orchestration.notifications.schedule import RetrySchedule


@dataclass(frozen=True)
class NotificationConfig:
    public_url: str = "http://127.0.0.1:8000"  # the base of the links in payloads
    require_https: bool = False  # production: endpoints must be https
    allowed_networks: tuple[IPNetwork, ...] = ()  # the operator's allow-list
    max_endpoints: int = 10  # per owner
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    disable_after_failed: int = 5  # deliveries failed in a row before the endpoint is disabled
    rotation_overlap_seconds: float = 86_400.0  # a rotated-out secret still signs this long
    connect_timeout_seconds: float = 3.0
    timeout_seconds: float = 10.0  # the whole request, connect to the last byte read
    send_rate_limit: str = "120/minute"  # sends per owner (all their endpoints)
    rate_limit_storage_uri: str = "memory://"
    lease_seconds: float = 30.0  # a claimed delivery is due again after this (its sender died)
    tick_seconds: float = 0.5
    max_in_flight: int = 16  # sends at once from one process
