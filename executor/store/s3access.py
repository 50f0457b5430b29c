"""How to reach an S3 endpoint, beyond the bucket: what a store URL's query or a DVC remote's
options say. Light on purpose (no botocore): it is read before any request is due."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class S3Access:
    """Unset fields fall back to botocore's own chain (environment, profile, instance role).
    Secrets stay out of repr, so no log or error message can show them."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    credentials_file: str | None = None  # instead of ~/.aws/credentials
    config_file: str | None = None  # instead of ~/.aws/config
    verify: bool | str | None = None  # TLS: False, or a CA bundle's path
    use_ssl: bool = True
    connect_timeout: float | None = None
    read_timeout: float | None = None
