-- Agents that connect: what they report about themselves, their startup logs and log sources,
-- and their metadata. An agent's connection is kept in its timestamps: `last_connected_at` is
-- refreshed by the replica holding the connection (a heartbeat), so every replica can tell a
-- live agent from one whose replica died.

ALTER TABLE workspace_agents
    ADD COLUMN version text NOT NULL DEFAULT '',
    ADD COLUMN api_version text NOT NULL DEFAULT '',
    ADD COLUMN expanded_directory text NOT NULL DEFAULT '',
    ADD COLUMN subsystems text[] NOT NULL DEFAULT '{}',
    ADD COLUMN started_at timestamptz,
    ADD COLUMN ready_at timestamptz,
    ADD COLUMN last_connected_replica_id uuid,
    ADD COLUMN logs_length integer NOT NULL DEFAULT 0,
    ADD COLUMN logs_overflowed boolean NOT NULL DEFAULT false;

CREATE INDEX workspace_agents_auth_token_idx ON workspace_agents (auth_token);

CREATE TABLE workspace_agent_log_sources (
    workspace_agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    display_name text NOT NULL,
    icon text NOT NULL DEFAULT '',
    PRIMARY KEY (workspace_agent_id, id)
);

CREATE TABLE workspace_agent_logs (
    id bigserial PRIMARY KEY,
    agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    output text NOT NULL,
    level text NOT NULL DEFAULT 'info',
    log_source_id uuid NOT NULL
);
CREATE INDEX workspace_agent_logs_agent_idx ON workspace_agent_logs (agent_id, id);

-- Scripts an agent runs (the template's startup script, `coder_script`s), each with its log
-- source.
CREATE TABLE workspace_agent_scripts (
    workspace_agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    log_source_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    display_name text NOT NULL DEFAULT '',
    script text NOT NULL,
    cron text NOT NULL DEFAULT '',
    log_path text NOT NULL DEFAULT '',
    run_on_start boolean NOT NULL DEFAULT true,
    run_on_stop boolean NOT NULL DEFAULT false,
    start_blocks_login boolean NOT NULL DEFAULT false,
    timeout_seconds integer NOT NULL DEFAULT 0,
    display_order integer NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_agent_id, id)
);

CREATE TABLE workspace_agent_script_timings (
    script_id uuid NOT NULL,
    agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    started_at timestamptz NOT NULL,
    ended_at timestamptz NOT NULL,
    exit_code integer NOT NULL,
    stage text NOT NULL,
    status text NOT NULL
);
CREATE INDEX workspace_agent_script_timings_agent_idx ON workspace_agent_script_timings (agent_id);

CREATE TABLE workspace_agent_metadata (
    workspace_agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    key text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    script text NOT NULL DEFAULT '',
    interval_seconds bigint NOT NULL DEFAULT 10,
    timeout_seconds bigint NOT NULL DEFAULT 10,
    value text NOT NULL DEFAULT '',
    error text NOT NULL DEFAULT '',
    collected_at timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    display_order integer NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_agent_id, key)
);

-- App health as the agent reports it (apps without a health check stay `disabled`).
ALTER TABLE workspace_apps ADD COLUMN health text NOT NULL DEFAULT 'disabled';
