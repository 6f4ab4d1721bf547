-- Revisions and events refer to a resource by kind, name and uid, not by a
-- foreign key: the three resource tables are one logical table, and events
-- outlive the row they are about (audit).

CREATE TABLE revisions (
    id           bigserial   PRIMARY KEY,
    kind         text        NOT NULL,
    resource_uid uuid        NOT NULL,
    name         text        NOT NULL,
    number       bigint      NOT NULL,
    generation   bigint      NOT NULL,
    spec         jsonb       NOT NULL,
    actor        text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT revisions_resource_uid_number_key UNIQUE (resource_uid, number),
    CONSTRAINT revisions_kind_check CHECK (kind <> ''),
    CONSTRAINT revisions_name_check CHECK (name <> ''),
    CONSTRAINT revisions_number_check CHECK (number >= 1),
    CONSTRAINT revisions_generation_check CHECK (generation >= 1),
    CONSTRAINT revisions_spec_check CHECK (jsonb_typeof(spec) = 'object')
);
CREATE INDEX revisions_kind_name_idx ON revisions (kind, name);

-- resource_uid is the nil uuid when the resource did not exist when the event
-- was recorded. Repeats of one (resource, type, reason, message) fold into one
-- row through events_fold_key.
CREATE TABLE events (
    id           bigserial   PRIMARY KEY,
    kind         text        NOT NULL,
    name         text        NOT NULL,
    tenant       text        NOT NULL DEFAULT '',
    resource_uid uuid        NOT NULL,
    type         text        NOT NULL,
    reason       text        NOT NULL,
    message      text        NOT NULL DEFAULT '',
    count        integer     NOT NULL DEFAULT 1,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_kind_check CHECK (kind <> ''),
    CONSTRAINT events_name_check CHECK (name <> ''),
    CONSTRAINT events_type_check CHECK (type IN ('Normal', 'Warning')),
    CONSTRAINT events_reason_check CHECK (reason <> ''),
    CONSTRAINT events_count_check CHECK (count >= 1),
    CONSTRAINT events_seen_check CHECK (last_seen >= first_seen)
);
CREATE UNIQUE INDEX events_fold_key ON events (kind, name, resource_uid, type, reason, md5(message));
CREATE INDEX events_kind_name_idx ON events (kind, name, last_seen DESC);
CREATE INDEX events_tenant_idx ON events (tenant, last_seen DESC);
