-- Users, API keys, organizations, groups and files: the foundation every later table refers to.

CREATE TYPE login_type AS ENUM ('password', 'github', 'oidc', 'token', 'none');
CREATE TYPE user_status AS ENUM ('active', 'dormant', 'suspended');
CREATE TYPE api_key_scope AS ENUM ('all', 'application_connect');

CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    username text NOT NULL,
    name text NOT NULL DEFAULT '',
    hashed_password text NOT NULL DEFAULT '',
    avatar_url text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    status user_status NOT NULL DEFAULT 'dormant',
    login_type login_type NOT NULL DEFAULT 'password',
    -- Site-wide roles; membership in `member` is implicit.
    rbac_roles text[] NOT NULL DEFAULT '{}',
    theme_preference text NOT NULL DEFAULT '',
    deleted boolean NOT NULL DEFAULT false
);
-- Emails and usernames are unique case-insensitively among users that are not deleted.
CREATE UNIQUE INDEX users_email_lower_idx ON users (lower(email)) WHERE NOT deleted;
CREATE UNIQUE INDEX users_username_lower_idx ON users (lower(username)) WHERE NOT deleted;

CREATE TABLE api_keys (
    -- The 10-character public half of the token.
    id text PRIMARY KEY,
    -- SHA-256 of the 22-character secret half.
    hashed_secret bytea NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last_used timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    login_type login_type NOT NULL,
    lifetime_seconds bigint NOT NULL,
    ip_address inet,
    scope api_key_scope NOT NULL DEFAULT 'all',
    token_name text NOT NULL DEFAULT ''
);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);
CREATE UNIQUE INDEX idx_api_key_name ON api_keys (user_id, token_name) WHERE login_type = 'token';

CREATE TABLE organizations (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    display_name text NOT NULL,
    description text NOT NULL DEFAULT '',
    icon text NOT NULL DEFAULT '',
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX organizations_name_lower_idx ON organizations (lower(name));
CREATE UNIQUE INDEX organizations_single_default_idx ON organizations (is_default) WHERE is_default;

CREATE TABLE organization_members (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- Organization-scoped roles; `organization-member` is implicit.
    roles text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX organization_members_user_idx ON organization_members (user_id);

CREATE TABLE groups (
    -- The "Everyone" group of an organization has the organization's id.
    id uuid PRIMARY KEY,
    name text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    avatar_url text NOT NULL DEFAULT '',
    quota_allowance integer NOT NULL DEFAULT 0,
    source text NOT NULL DEFAULT 'user'
);
CREATE UNIQUE INDEX groups_name_org_idx ON groups (organization_id, lower(name));

-- Explicit members only; the Everyone group's members are the organization's members.
CREATE TABLE group_members (
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id);

CREATE TABLE files (
    id uuid PRIMARY KEY,
    hash varchar(64) NOT NULL,
    created_at timestamptz NOT NULL,
    created_by uuid NOT NULL REFERENCES users (id),
    mimetype varchar(64) NOT NULL,
    data bytea NOT NULL,
    UNIQUE (hash, created_by)
);

-- A deployment starts with one organization, `coder`, and its Everyone group.
WITH org AS (
    INSERT INTO organizations (id, name, display_name, description, is_default, created_at, updated_at)
    VALUES (gen_random_uuid(), 'coder', 'Coder', 'Builtin default organization.', true, now(), now())
    RETURNING id
)
INSERT INTO groups (id, name, display_name, organization_id)
SELECT id, 'Everyone', '', id FROM org;

-- Deployment-wide settings, such as the deployment id reported by /buildinfo.
CREATE TABLE site_configs (
    key text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO site_configs (key, value) VALUES ('deployment_id', gen_random_uuid()::text);
