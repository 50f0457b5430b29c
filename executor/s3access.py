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
    # Applied to every object and entry written, as DVC applies them: server-side encryption
    # ("AES256" or "aws:kms", with an optional KMS key), a canned ACL or explicit grants.
    sse: str | None = None
    sse_kms_key_id: str | None = None
    acl: str | None = None
    grants: tuple[tuple[str, str], ...] = ()  # (GrantRead etc., grantee list)

    def write_args(self) -> dict[str, str]:
        """The extra parameters of PutObject and CreateMultipartUpload."""
        args = dict(self.grants)
        for name, value in (
            ("ServerSideEncryption", self.sse),
            ("SSEKMSKeyId", self.sse_kms_key_id),
            ("ACL", self.acl),
        ):
            if value:
                args[name] = value
        return args
