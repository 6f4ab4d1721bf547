-- Installation-wide settings, one JSON value per key.
CREATE TABLE system (
    key        text        PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT system_key_check CHECK (key <> '')
);
INSERT INTO system (key, value) VALUES ('system_initialized', 'false');
