-- Templates, their versions, the provisioner job queue with its logs and daemons, and the
-- resources (with agents and apps) that jobs produce.

CREATE TYPE provisioner_type AS ENUM ('echo', 'terraform');
CREATE TYPE provisioner_job_type AS ENUM ('template_version_import', 'workspace_build', 'template_version_dry_run');
CREATE TYPE provisioner_job_status AS ENUM ('pending', 'running', 'succeeded', 'canceling', 'canceled', 'failed', 'unknown');
CREATE TYPE log_level AS ENUM ('trace', 'debug', 'info', 'warn', 'error');
CREATE TYPE log_source AS ENUM ('provisioner_daemon', 'provisioner');

CREATE TABLE provisioner_jobs (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    started_at timestamptz,
    canceled_at timestamptz,
    completed_at timestamptz,
    error text,
    error_code text,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    initiator_id uuid NOT NULL REFERENCES users (id),
    provisioner provisioner_type NOT NULL,
    storage_method text NOT NULL DEFAULT 'file',
    type provisioner_job_type NOT NULL,
    input jsonb NOT NULL,
    worker_id uuid,
    file_id uuid NOT NULL REFERENCES files (id),
    tags jsonb NOT NULL DEFAULT '{"scope": "organization", "owner": ""}',
    logs_overflowed boolean NOT NULL DEFAULT false,
    -- Exactly Coder's derivation: an error fails, a cancel cancels, else by timestamps.
    job_status provisioner_job_status NOT NULL GENERATED ALWAYS AS (
        CASE
            WHEN completed_at IS NOT NULL THEN
                CASE
                    WHEN error <> '' THEN 'failed'::provisioner_job_status
                    WHEN canceled_at IS NOT NULL THEN 'canceled'::provisioner_job_status
                    ELSE 'succeeded'::provisioner_job_status
                END
            ELSE
                CASE
                    WHEN error <> '' THEN 'failed'::provisioner_job_status
                    WHEN canceled_at IS NOT NULL THEN 'canceling'::provisioner_job_status
                    WHEN started_at IS NULL THEN 'pending'::provisioner_job_status
                    ELSE 'running'::provisioner_job_status
                END
        END
    ) STORED
);
-- The queue: acquisition takes the oldest pending job; queue positions count pending jobs ahead.
CREATE INDEX provisioner_jobs_pending_idx ON provisioner_jobs (organization_id, provisioner, created_at, id)
    WHERE job_status = 'pending';
-- The reaper looks at unfinished jobs only.
CREATE INDEX provisioner_jobs_unfinished_idx ON provisioner_jobs (updated_at) WHERE completed_at IS NULL;
CREATE INDEX provisioner_jobs_org_created_idx ON provisioner_jobs (organization_id, created_at DESC);

CREATE TABLE provisioner_job_logs (
    id bigserial PRIMARY KEY,
    job_id uuid NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    source log_source NOT NULL,
    level log_level NOT NULL,
    stage varchar(128) NOT NULL,
    output varchar(1024) NOT NULL
);
CREATE INDEX provisioner_job_logs_job_idx ON provisioner_job_logs (job_id, id);

-- Timings of a job's steps per resource (Terraform) or per stage (echo).
CREATE TABLE provisioner_job_timings (
    job_id uuid NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    started_at timestamptz NOT NULL,
    ended_at timestamptz NOT NULL,
    stage text NOT NULL,
    source text NOT NULL,
    action text NOT NULL,
    resource text NOT NULL
);
CREATE INDEX provisioner_job_timings_job_idx ON provisioner_job_timings (job_id);

CREATE TABLE provisioner_daemons (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    name text NOT NULL,
    provisioners provisioner_type[] NOT NULL,
    -- NULL: a built-in daemon, serving every organization.
    organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
    tags jsonb NOT NULL,
    last_seen_at timestamptz NOT NULL,
    version text NOT NULL,
    api_version text NOT NULL,
    current_job_id uuid REFERENCES provisioner_jobs (id) ON DELETE SET NULL,
    previous_job_id uuid REFERENCES provisioner_jobs (id) ON DELETE SET NULL
);

CREATE TABLE templates (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    deleted boolean NOT NULL DEFAULT false,
    name text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    icon text NOT NULL DEFAULT '',
    provisioner provisioner_type NOT NULL,
    active_version_id uuid NOT NULL,
    created_by uuid NOT NULL REFERENCES users (id),
    -- user id → role ("use" | "admin"); group id → role. The Everyone group's id is the org's.
    user_acl jsonb NOT NULL DEFAULT '{}',
    group_acl jsonb NOT NULL DEFAULT '{}',
    -- Durations in nanoseconds, as Coder stores them.
    default_ttl bigint NOT NULL DEFAULT 0,
    activity_bump bigint NOT NULL DEFAULT 3600000000000,
    failure_ttl bigint NOT NULL DEFAULT 0,
    time_til_dormant bigint NOT NULL DEFAULT 0,
    time_til_dormant_autodelete bigint NOT NULL DEFAULT 0,
    autostop_requirement_days_of_week text[] NOT NULL DEFAULT '{}',
    autostop_requirement_weeks bigint NOT NULL DEFAULT 1,
    autostart_allowed_days text[] NOT NULL DEFAULT '{monday,tuesday,wednesday,thursday,friday,saturday,sunday}',
    allow_user_autostart boolean NOT NULL DEFAULT true,
    allow_user_autostop boolean NOT NULL DEFAULT true,
    allow_user_cancel_workspace_jobs boolean NOT NULL DEFAULT false,
    require_active_version boolean NOT NULL DEFAULT false,
    deprecated text NOT NULL DEFAULT '',
    max_port_sharing_level text NOT NULL DEFAULT 'owner',
    cors_behavior text NOT NULL DEFAULT 'simple',
    use_classic_parameter_flow boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX templates_org_name_idx ON templates (organization_id, lower(name)) WHERE NOT deleted;

CREATE TABLE template_versions (
    id uuid PRIMARY KEY,
    template_id uuid REFERENCES templates (id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    name text NOT NULL,
    message text NOT NULL DEFAULT '',
    readme text NOT NULL DEFAULT '',
    job_id uuid NOT NULL UNIQUE REFERENCES provisioner_jobs (id),
    created_by uuid NOT NULL REFERENCES users (id),
    archived boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX template_versions_template_name_idx ON template_versions (template_id, lower(name));
CREATE INDEX template_versions_template_created_idx ON template_versions (template_id, created_at);

ALTER TABLE templates ADD CONSTRAINT templates_active_version_fk
    FOREIGN KEY (active_version_id) REFERENCES template_versions (id) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE template_version_parameters (
    template_version_id uuid NOT NULL REFERENCES template_versions (id) ON DELETE CASCADE,
    display_order integer NOT NULL,
    name text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    type text NOT NULL,
    form_type text NOT NULL DEFAULT '',
    mutable boolean NOT NULL DEFAULT false,
    default_value text NOT NULL DEFAULT '',
    icon text NOT NULL DEFAULT '',
    options jsonb NOT NULL DEFAULT '[]',
    validation_regex text NOT NULL DEFAULT '',
    validation_min integer,
    validation_max integer,
    validation_error text NOT NULL DEFAULT '',
    validation_monotonic text NOT NULL DEFAULT '',
    required boolean NOT NULL DEFAULT false,
    ephemeral boolean NOT NULL DEFAULT false,
    PRIMARY KEY (template_version_id, name)
);

CREATE TABLE template_version_variables (
    template_version_id uuid NOT NULL REFERENCES template_versions (id) ON DELETE CASCADE,
    display_order integer NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    type text NOT NULL,
    value text NOT NULL DEFAULT '',
    default_value text NOT NULL DEFAULT '',
    required boolean NOT NULL DEFAULT false,
    sensitive boolean NOT NULL DEFAULT false,
    PRIMARY KEY (template_version_id, name)
);

CREATE TABLE workspace_resources (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    job_id uuid NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    transition text NOT NULL,
    type text NOT NULL,
    name text NOT NULL,
    hide boolean NOT NULL DEFAULT false,
    icon text NOT NULL DEFAULT '',
    daily_cost integer NOT NULL DEFAULT 0,
    display_order integer NOT NULL DEFAULT 0
);
CREATE INDEX workspace_resources_job_idx ON workspace_resources (job_id);

CREATE TABLE workspace_resource_metadata (
    workspace_resource_id uuid NOT NULL REFERENCES workspace_resources (id) ON DELETE CASCADE,
    key text NOT NULL,
    value text NOT NULL DEFAULT '',
    sensitive boolean NOT NULL DEFAULT false,
    display_order integer NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_resource_id, key)
);

CREATE TABLE workspace_agents (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    resource_id uuid NOT NULL REFERENCES workspace_resources (id) ON DELETE CASCADE,
    name text NOT NULL,
    auth_token uuid NOT NULL,
    operating_system text NOT NULL DEFAULT '',
    architecture text NOT NULL DEFAULT '',
    directory text NOT NULL DEFAULT '',
    connection_timeout_seconds integer NOT NULL DEFAULT 120,
    troubleshooting_url text NOT NULL DEFAULT '',
    first_connected_at timestamptz,
    last_connected_at timestamptz,
    disconnected_at timestamptz,
    lifecycle_state text NOT NULL DEFAULT 'created',
    display_order integer NOT NULL DEFAULT 0
);
CREATE INDEX workspace_agents_resource_idx ON workspace_agents (resource_id);

CREATE TABLE workspace_apps (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    slug text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    icon text NOT NULL DEFAULT '',
    command text NOT NULL DEFAULT '',
    url text NOT NULL DEFAULT '',
    external boolean NOT NULL DEFAULT false,
    subdomain boolean NOT NULL DEFAULT false,
    sharing_level text NOT NULL DEFAULT 'owner',
    hidden boolean NOT NULL DEFAULT false,
    open_in text NOT NULL DEFAULT 'slim-window',
    display_order integer NOT NULL DEFAULT 0
);
CREATE INDEX workspace_apps_agent_idx ON workspace_apps (agent_id);

-- Whether a provisioner with `provisioner_tags` may run a job tagged `job_tags`: an untagged job
-- (organization scope, no owner) only on an untagged provisioner, otherwise by containment.
CREATE FUNCTION provisioner_tagset_contains(provisioner_tags jsonb, job_tags jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN job_tags = '{"scope": "organization", "owner": ""}'::jsonb THEN provisioner_tags = job_tags
        ELSE job_tags <@ provisioner_tags
    END
$$;
