-- Identity: who may log in (principals) and the credentials the panel issued
-- to them. Secrets are never stored: refresh and API tokens are kept as the
-- SHA-256 of their secret part, looked up by their id. Access tokens (JWTs)
-- are not stored at all; the signing keys live in files, not here.

-- A principal is a login name (PAM) or an automation identity (local: no
-- password, only API tokens). A tenant principal is bound to one tenant and
-- goes with it; a reseller owns the tenants listed in auth_principal_tenants.
CREATE TABLE auth_principals (
    name       text        PRIMARY KEY,
    role       text        NOT NULL,
    tenant     text        NULL REFERENCES tenants (name) ON DELETE CASCADE ON UPDATE RESTRICT,
    source     text        NOT NULL,
    disabled   boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT auth_principals_name_check CHECK (name <> '' AND length(name) <= 64),
    CONSTRAINT auth_principals_role_check CHECK (role IN ('admin', 'tenant', 'reseller')),
    CONSTRAINT auth_principals_tenant_check CHECK ((role = 'tenant') = (tenant IS NOT NULL)),
    CONSTRAINT auth_principals_source_check CHECK (source IN ('pam', 'local'))
);
CREATE INDEX auth_principals_tenant_idx ON auth_principals (tenant);

-- The tenants a reseller owns.
CREATE TABLE auth_principal_tenants (
    principal text NOT NULL REFERENCES auth_principals (name) ON DELETE CASCADE,
    tenant    text NOT NULL REFERENCES tenants (name) ON DELETE CASCADE ON UPDATE RESTRICT,
    PRIMARY KEY (principal, tenant)
);
CREATE INDEX auth_principal_tenants_tenant_idx ON auth_principal_tenants (tenant);

-- Refresh tokens rotate: each is used once and replaced by a new one of the
-- same family (parent names the one it replaced). Presenting a used one
-- revokes the whole family. A family never outlives family_expires_at.
CREATE TABLE auth_refresh_tokens (
    id                text        PRIMARY KEY,
    principal         text        NOT NULL REFERENCES auth_principals (name) ON DELETE CASCADE,
    family            uuid        NOT NULL,
    parent            text        NULL,
    hash              bytea       NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    family_expires_at timestamptz NOT NULL,
    used_at           timestamptz NULL,
    revoked_at        timestamptz NULL,
    user_agent        text        NOT NULL DEFAULT '',
    source_address    text        NOT NULL DEFAULT '',
    CONSTRAINT auth_refresh_tokens_id_check CHECK (id <> ''),
    CONSTRAINT auth_refresh_tokens_hash_check CHECK (octet_length(hash) = 32),
    CONSTRAINT auth_refresh_tokens_expires_check CHECK (expires_at > created_at AND expires_at <= family_expires_at)
);
CREATE INDEX auth_refresh_tokens_family_idx ON auth_refresh_tokens (family);
CREATE INDEX auth_refresh_tokens_principal_idx ON auth_refresh_tokens (principal);
CREATE INDEX auth_refresh_tokens_expires_idx ON auth_refresh_tokens (family_expires_at);

-- Long-lived API tokens for automation: named (unique among a principal's
-- tokens that are not revoked), scoped, revocable; they act as their
-- principal, narrowed to their scopes.
CREATE TABLE auth_api_tokens (
    id           text        PRIMARY KEY,
    name         text        NOT NULL,
    principal    text        NOT NULL REFERENCES auth_principals (name) ON DELETE CASCADE,
    scopes       text[]      NOT NULL,
    hash         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL DEFAULT '',
    expires_at   timestamptz NULL,
    revoked_at   timestamptz NULL,
    last_used_at timestamptz NULL,
    CONSTRAINT auth_api_tokens_id_check CHECK (id <> ''),
    CONSTRAINT auth_api_tokens_name_check CHECK (name <> '' AND length(name) <= 64),
    CONSTRAINT auth_api_tokens_scopes_check CHECK (cardinality(scopes) >= 1),
    CONSTRAINT auth_api_tokens_hash_check CHECK (octet_length(hash) = 32),
    CONSTRAINT auth_api_tokens_expires_check CHECK (expires_at IS NULL OR expires_at > created_at)
);
CREATE UNIQUE INDEX auth_api_tokens_principal_name_key ON auth_api_tokens (principal, name) WHERE revoked_at IS NULL;
