-- Resources: one table per kind, the same columns in each, so one code path
-- serves every kind. Every table has a "tenant" column: a Tenant's own name
-- (generated), or the owning tenant's name, tied to tenant_id by a composite
-- foreign key so the two can never disagree.

CREATE TABLE tenants (
    id                    bigserial   PRIMARY KEY,
    uid                   uuid        NOT NULL DEFAULT gen_random_uuid(),
    name                  text        NOT NULL,
    tenant                text        GENERATED ALWAYS AS (name) STORED,
    node                  text        NOT NULL DEFAULT '',
    labels                jsonb       NOT NULL DEFAULT '{}',
    annotations           jsonb       NOT NULL DEFAULT '{}',
    spec                  jsonb       NOT NULL,
    status                jsonb       NOT NULL DEFAULT '{}',
    generation            bigint      NOT NULL DEFAULT 1,
    observed_generation   bigint      NOT NULL DEFAULT 0,
    resource_version      bigint      NOT NULL DEFAULT 1,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deletion_requested_at timestamptz NULL,
    CONSTRAINT tenants_uid_key UNIQUE (uid),
    CONSTRAINT tenants_name_key UNIQUE (name),
    CONSTRAINT tenants_id_name_key UNIQUE (id, name),
    CONSTRAINT tenants_name_check CHECK (name <> ''),
    CONSTRAINT tenants_labels_check CHECK (jsonb_typeof(labels) = 'object'),
    CONSTRAINT tenants_annotations_check CHECK (jsonb_typeof(annotations) = 'object'),
    CONSTRAINT tenants_spec_check CHECK (jsonb_typeof(spec) = 'object'),
    CONSTRAINT tenants_status_check CHECK (jsonb_typeof(status) = 'object'),
    CONSTRAINT tenants_generation_check CHECK (generation >= 1),
    CONSTRAINT tenants_observed_generation_check CHECK (observed_generation BETWEEN 0 AND generation),
    CONSTRAINT tenants_resource_version_check CHECK (resource_version >= 1)
);
CREATE INDEX tenants_node_idx ON tenants (node);
CREATE INDEX tenants_labels_idx ON tenants USING gin (labels jsonb_path_ops);

CREATE TABLE domains (
    id                    bigserial   PRIMARY KEY,
    uid                   uuid        NOT NULL DEFAULT gen_random_uuid(),
    name                  text        NOT NULL,
    tenant_id             bigint      NOT NULL,
    tenant                text        NOT NULL,
    node                  text        NOT NULL DEFAULT '',
    labels                jsonb       NOT NULL DEFAULT '{}',
    annotations           jsonb       NOT NULL DEFAULT '{}',
    spec                  jsonb       NOT NULL,
    status                jsonb       NOT NULL DEFAULT '{}',
    generation            bigint      NOT NULL DEFAULT 1,
    observed_generation   bigint      NOT NULL DEFAULT 0,
    resource_version      bigint      NOT NULL DEFAULT 1,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deletion_requested_at timestamptz NULL,
    CONSTRAINT domains_uid_key UNIQUE (uid),
    CONSTRAINT domains_name_key UNIQUE (name),
    CONSTRAINT domains_tenant_fkey FOREIGN KEY (tenant_id, tenant)
        REFERENCES tenants (id, name) ON DELETE RESTRICT ON UPDATE RESTRICT,
    CONSTRAINT domains_name_check CHECK (name <> ''),
    CONSTRAINT domains_labels_check CHECK (jsonb_typeof(labels) = 'object'),
    CONSTRAINT domains_annotations_check CHECK (jsonb_typeof(annotations) = 'object'),
    CONSTRAINT domains_spec_check CHECK (jsonb_typeof(spec) = 'object'),
    CONSTRAINT domains_status_check CHECK (jsonb_typeof(status) = 'object'),
    CONSTRAINT domains_generation_check CHECK (generation >= 1),
    CONSTRAINT domains_observed_generation_check CHECK (observed_generation BETWEEN 0 AND generation),
    CONSTRAINT domains_resource_version_check CHECK (resource_version >= 1)
);
CREATE INDEX domains_tenant_idx ON domains (tenant_id, tenant);
CREATE INDEX domains_tenant_name_idx ON domains (tenant, name);
CREATE INDEX domains_node_idx ON domains (node);
CREATE INDEX domains_labels_idx ON domains USING gin (labels jsonb_path_ops);

-- One hostname is served by one domain: the primary key refuses a second.
CREATE TABLE domain_hostnames (
    hostname  text   PRIMARY KEY,
    domain_id bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    CONSTRAINT domain_hostnames_hostname_check CHECK (hostname <> '' AND hostname = lower(hostname))
);
CREATE INDEX domain_hostnames_domain_idx ON domain_hostnames (domain_id);

CREATE TABLE databases (
    id                    bigserial   PRIMARY KEY,
    uid                   uuid        NOT NULL DEFAULT gen_random_uuid(),
    name                  text        NOT NULL,
    tenant_id             bigint      NOT NULL,
    tenant                text        NOT NULL,
    engine                text        NOT NULL,
    database_name         text        NOT NULL,
    node                  text        NOT NULL DEFAULT '',
    labels                jsonb       NOT NULL DEFAULT '{}',
    annotations           jsonb       NOT NULL DEFAULT '{}',
    spec                  jsonb       NOT NULL,
    status                jsonb       NOT NULL DEFAULT '{}',
    generation            bigint      NOT NULL DEFAULT 1,
    observed_generation   bigint      NOT NULL DEFAULT 0,
    resource_version      bigint      NOT NULL DEFAULT 1,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deletion_requested_at timestamptz NULL,
    CONSTRAINT databases_uid_key UNIQUE (uid),
    CONSTRAINT databases_name_key UNIQUE (name),
    CONSTRAINT databases_engine_database_name_key UNIQUE (engine, database_name),
    CONSTRAINT databases_tenant_fkey FOREIGN KEY (tenant_id, tenant)
        REFERENCES tenants (id, name) ON DELETE RESTRICT ON UPDATE RESTRICT,
    CONSTRAINT databases_name_check CHECK (name <> ''),
    CONSTRAINT databases_engine_check CHECK (engine <> ''),
    CONSTRAINT databases_database_name_check CHECK (database_name <> ''),
    CONSTRAINT databases_labels_check CHECK (jsonb_typeof(labels) = 'object'),
    CONSTRAINT databases_annotations_check CHECK (jsonb_typeof(annotations) = 'object'),
    CONSTRAINT databases_spec_check CHECK (jsonb_typeof(spec) = 'object'),
    CONSTRAINT databases_status_check CHECK (jsonb_typeof(status) = 'object'),
    CONSTRAINT databases_generation_check CHECK (generation >= 1),
    CONSTRAINT databases_observed_generation_check CHECK (observed_generation BETWEEN 0 AND generation),
    CONSTRAINT databases_resource_version_check CHECK (resource_version >= 1)
);
CREATE INDEX databases_tenant_idx ON databases (tenant_id, tenant);
CREATE INDEX databases_tenant_name_idx ON databases (tenant, name);
CREATE INDEX databases_node_idx ON databases (node);
CREATE INDEX databases_labels_idx ON databases USING gin (labels jsonb_path_ops);
