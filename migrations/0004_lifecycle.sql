-- The lifecycle executor: a system user that initiates automatic builds, and users' quiet
-- hours (when autostop requirements may stop their workspaces).

ALTER TABLE users ADD COLUMN is_system boolean NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN quiet_hours_schedule text NOT NULL DEFAULT '';

INSERT INTO users (id, email, username, name, created_at, updated_at, status, login_type, is_system)
VALUES ('c42fdf75-3097-471c-8c33-fb52454d81c0', 'system@coderd.invalid', 'coder', 'Coder',
        now(), now(), 'active', 'none', true);

-- Workspaces the executor looks at each tick, found without scanning every workspace.
CREATE INDEX workspaces_autostart_idx ON workspaces (id) WHERE NOT deleted AND autostart_schedule IS NOT NULL;
CREATE INDEX workspaces_dormant_idx ON workspaces (deleting_at) WHERE NOT deleted AND dormant_at IS NOT NULL;
CREATE INDEX workspace_builds_deadline_idx ON workspace_builds (deadline) WHERE deadline > '0001-01-02';
