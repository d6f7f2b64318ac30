-- Workspaces, their builds and build parameters.

CREATE TYPE workspace_transition AS ENUM ('start', 'stop', 'delete');
CREATE TYPE build_reason AS ENUM ('initiator', 'autostart', 'autostop', 'dormancy', 'failedstop', 'autodelete');
CREATE TYPE automatic_updates AS ENUM ('always', 'never');

CREATE TABLE workspaces (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    owner_id uuid NOT NULL REFERENCES users (id),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    template_id uuid NOT NULL REFERENCES templates (id),
    deleted boolean NOT NULL DEFAULT false,
    name varchar(64) NOT NULL,
    autostart_schedule text,
    -- Nanoseconds, as Coder stores it; NULL = no autostop.
    ttl bigint,
    last_used_at timestamptz NOT NULL,
    dormant_at timestamptz,
    deleting_at timestamptz,
    automatic_updates automatic_updates NOT NULL DEFAULT 'never',
    favorite boolean NOT NULL DEFAULT false,
    next_start_at timestamptz,
    -- user id / group id → role ("use" | "admin") for shared workspaces.
    user_acl jsonb NOT NULL DEFAULT '{}',
    group_acl jsonb NOT NULL DEFAULT '{}'
);
-- Names are unique per owner, case-insensitively, among workspaces that are not deleted.
CREATE UNIQUE INDEX workspaces_owner_name_idx ON workspaces (owner_id, lower(name)) WHERE NOT deleted;
CREATE INDEX workspaces_template_idx ON workspaces (template_id) WHERE NOT deleted;
CREATE INDEX workspaces_org_idx ON workspaces (organization_id) WHERE NOT deleted;

CREATE TABLE workspace_builds (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    template_version_id uuid NOT NULL REFERENCES template_versions (id),
    build_number integer NOT NULL,
    transition workspace_transition NOT NULL,
    initiator_id uuid NOT NULL REFERENCES users (id),
    provisioner_state bytea NOT NULL DEFAULT '',
    job_id uuid NOT NULL UNIQUE REFERENCES provisioner_jobs (id),
    deadline timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    max_deadline timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    reason build_reason NOT NULL DEFAULT 'initiator',
    daily_cost integer NOT NULL DEFAULT 0,
    UNIQUE (workspace_id, build_number)
);

CREATE TABLE workspace_build_parameters (
    workspace_build_id uuid NOT NULL REFERENCES workspace_builds (id) ON DELETE CASCADE,
    name text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (workspace_build_id, name)
);

-- The latest build of each workspace, the most-read fact in the system.
CREATE VIEW workspace_latest_builds AS
    SELECT DISTINCT ON (workspace_id) * FROM workspace_builds ORDER BY workspace_id, build_number DESC;
