"""Settings read from the environment (prefix TENANTRY_) and the server secret's life cycle."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_FILE_NAME = "secret_key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TENANTRY_", extra="ignore")

    data_dir: Path = Path(".tenantry")
    database_url: str | None = None
    # Connections each process keeps open (and as many again at peaks): size it so that
    # replicas x 2 x this stays below the database's max_connections.
    database_pool_size: int = Field(default=20, ge=1, le=500)
    secret_key: SecretStr | None = None
    # The address people reach the service at, for links (invitations). Unset: the address each
    # request came in on, which is right unless a proxy rewrites it.
    base_url: str | None = None

    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    jwt_audience: str = "tenantry"
    jwt_issuer: str = "tenantry"

    invitation_ttl_seconds: int = 7 * 24 * 3600
    password_min_length: int = Field(default=12, ge=8, le=128)
    # argon2id cost; the defaults follow RFC 9106's second recommended option.
    password_time_cost: int = 3
    password_memory_cost_kib: int = 65536
    login_max_failures: int = 5
    login_lockout_seconds: int = 300
    # The issuer an authenticator app shows beside a TOTP account (docs/security.md).
    mfa_issuer: str = Field(default="Tenantry", min_length=1, max_length=64)

    idempotency_ttl_seconds: int = 24 * 3600
    # Processes that verify one long audit chain in parallel (docs/audit.md, "Verification").
    audit_verify_workers: int = Field(default_factory=lambda: min(4, os.cpu_count() or 1), ge=1)
    # How long an admission's reservation holds its estimate unless settled (metering).
    reservation_ttl_seconds: int = Field(default=900, ge=1, le=86_400)
    max_request_body_bytes: int = 1024 * 1024
    # Worker threads each hot route (admission, settle, usage events) runs on, apart from the
    # shared pool: more only lengthens the wait for the interpreter lock (kit/http.py, `_lane`).
    hot_route_threads: int = Field(default=4, ge=1, le=64)
    api_key_touch_interval_seconds: int = 60

    # Rate limits, the daily API-calls quota and its usage records (docs/rate-limits.md).
    # Without a Redis URL the counters live in each process: exact for one process only.
    redis_url: str | None = None
    redis_key_prefix: str = "tenantry:"
    redis_timeout_seconds: float = Field(default=0.5, gt=0)
    # Every plan's rate limits times this (bursts and rates alike), for traffic the plans'
    # figures do not fit. The test suite runs with 100: its clock stands still, so no bucket
    # refills unless a test moves it.
    rate_limit_multiplier: float = Field(default=1.0, gt=0, le=10_000)
    # The API's own requests are recorded as `api_calls` usage in batches: at the start of the
    # first request after this many seconds (by the service's clock) or once this many usage
    # events (tallies of one caller's calls to one route in one minute) are waiting.
    api_calls_flush_seconds: float = Field(default=5.0, ge=0)
    api_calls_flush_size: int = Field(default=1000, ge=1)

    # Billing (docs/billing.md). `local` records payments without a processor; `stripe` uses
    # the official library with the API key below. The webhook endpoint verifies signatures
    # whenever the webhook secret is set, whichever provider is active, and answers 503 without.
    payment_provider: Literal["local", "stripe"] = "local"
    stripe_api_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    # A signed webhook older than this is refused (a replayed capture).
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1)
    # A period's invoice is made this long after the period ends, so usage reported late (up
    # to this much) is still on it.
    billing_invoice_delay_seconds: int = Field(default=3600, ge=0)
    # Days after a failed automatic payment at which it is tried again; then no more.
    billing_retry_days: tuple[int, ...] = (1, 3, 5)
    # Days an invoice is due after it is finalized (manual payment).
    billing_due_days: int = Field(default=14, ge=0)
    # Days a paid plan asked for at sign-up (onboarding, a new org) is a free trial; unpaid at
    # its end (no payment method), the org falls back to the Free plan.
    billing_trial_days: int = Field(default=14, ge=1, le=90)

    # Artifacts of runs and models (docs/ml.md): files under `artifact_dir` (default: the
    # data directory's `artifacts/`), or objects of an S3-compatible bucket. S3 credentials
    # come from the environment as boto3 reads them (AWS_ACCESS_KEY_ID, a profile, a role).
    artifact_store: Literal["local", "s3"] = "local"
    artifact_dir: Path | None = None
    artifact_s3_bucket: str | None = None
    artifact_s3_prefix: str = ""
    artifact_s3_endpoint_url: str | None = None
    artifact_s3_region: str | None = None
    # The largest single file an upload may hold, besides the plan's storage quota.
    max_artifact_bytes: int = Field(default=5 * 1024**3, ge=1)

    # The dashboard (docs/dashboard.md). Its session cookie is `Secure` when a request came
    # over HTTPS; set this to true behind a proxy that terminates TLS, false to never mark it.
    web_secure_cookies: bool | None = None
    # Outgoing mail (the forgotten-password link). Without a host no mail is sent and the
    # dashboard offers no password reset.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # `starttls` upgrades a plain connection (port 587), `tls` connects over TLS (port 465),
    # `none` sends in the clear (a relay on the same machine or network only).
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_from: str = "Tenantry <tenantry@localhost>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    password_reset_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # Enterprise sign-in (docs/sso.md). Clock skew allowed between us and identity providers
    # (ID tokens' and assertions' times), and how long a trip to the provider may take.
    sso_clock_skew_seconds: int = Field(default=60, ge=0, le=600)
    sso_attempt_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    # Addresses off this site an SSO sign-in may return to with its one-time code (an app's
    # own callback, a CLI's loopback port), as `scheme://host[:port]/path-prefix`.
    sso_return_urls: list[str] = Field(default_factory=list)
    # DNS servers for domain verification (`host` or `host:port`); empty: the system's.
    dns_nameservers: list[str] = Field(default_factory=list)

    # Outbound webhooks (docs/webhooks.md). Endpoints must be https URLs of public addresses
    # unless this allows http and loopback, private or link-local receivers (on-premise, tests).
    webhooks_allow_private_urls: bool = False
    # Attempts per delivery: the first, then retries after base x 4^(n-1) seconds, capped.
    webhooks_max_attempts: int = Field(default=8, ge=1, le=20)
    webhooks_retry_base_seconds: float = Field(default=30.0, gt=0)
    webhooks_retry_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    # Failed attempts in a row (over all its deliveries) after which an endpoint is disabled.
    webhooks_disable_after_failures: int = Field(default=20, ge=1)
    webhooks_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Attempts one worker pass makes at most, and how many it has in flight at once.
    webhooks_batch_size: int = Field(default=500, ge=1, le=10000)
    webhooks_concurrency: int = Field(default=16, ge=1, le=256)
    # How often a running worker delivers what is due between its passes.
    webhooks_poll_seconds: float = Field(default=2.0, gt=0, le=300)

    @model_validator(mode="after")
    def _provider_is_usable(self) -> Settings:
        if self.payment_provider == "stripe" and self.stripe_api_key is None:
            raise ValueError(
                "TENANTRY_PAYMENT_PROVIDER=stripe needs TENANTRY_STRIPE_API_KEY (a secret key)"
            )
        if self.artifact_store == "s3" and not self.artifact_s3_bucket:
            raise ValueError("TENANTRY_ARTIFACT_STORE=s3 needs TENANTRY_ARTIFACT_S3_BUCKET")
        return self

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tenantry.db').resolve()}"

    def uses_embedded_database(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")

    def server_secret(self) -> str:
        """The configured secret, or one generated once and kept in the data dir (mode 0600, the
        directory 0700: see `kit.files`)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / SECRET_FILE_NAME
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = secrets.token_urlsafe(48)
        # O_EXCL: two processes starting at once must not write two different secrets.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        return value
