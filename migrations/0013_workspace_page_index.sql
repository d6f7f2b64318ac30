-- The workspace page's first page from an index. Its order is: the requester's favorites, then
-- workspaces whose latest build is a successful start (`latest_build_running`, migration
-- 0012), then the owner's username and the workspace's name, both case-insensitively. The
-- owner's username lived only on `users`, so every page joined and sorted every visible
-- workspace. It is now kept on the workspace row too: set from the owner when a workspace is
-- made, and rewritten when a user's username changes.
ALTER TABLE workspaces ADD COLUMN owner_username text NOT NULL DEFAULT '';

UPDATE workspaces w SET owner_username = u.username FROM users u WHERE u.id = w.owner_id;

CREATE FUNCTION workspace_owner_username_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.owner_username := COALESCE((SELECT u.username FROM users u WHERE u.id = NEW.owner_id), '');
    RETURN NEW;
END $$;

CREATE FUNCTION workspace_owner_username_on_rename() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workspaces SET owner_username = NEW.username
    WHERE owner_id = NEW.id AND owner_username IS DISTINCT FROM NEW.username;
    RETURN NULL;
END $$;

CREATE TRIGGER workspaces_owner_username BEFORE INSERT OR UPDATE OF owner_id ON workspaces
    FOR EACH ROW EXECUTE FUNCTION workspace_owner_username_on_insert();
CREATE TRIGGER users_username_to_workspaces AFTER UPDATE OF username ON users
    FOR EACH ROW WHEN (OLD.username IS DISTINCT FROM NEW.username)
    EXECUTE FUNCTION workspace_owner_username_on_rename();

-- The page's order after the favorites. A page walks it and stops after `offset + limit`
-- matches; `id` last makes the order total.
CREATE INDEX workspaces_page_order_idx ON workspaces
    (latest_build_running DESC, lower(owner_username), lower(name), id) WHERE NOT deleted;

-- `owner:<username>` searches read their matches, not the table.
CREATE INDEX workspaces_owner_username_idx ON workspaces (lower(owner_username)) WHERE NOT deleted;

-- The requester's favorites, the page's first part.
CREATE INDEX workspaces_favorites_idx ON workspaces (owner_id) WHERE favorite AND NOT deleted;

-- `name:` (and a bare search term) is a case-insensitive substring match, as upstream's. Only
-- a trigram index serves that without reading every name, and trigrams are the `pg_trgm`
-- extension: trusted since PostgreSQL 13 (a database owner may create it) and shipped with
-- PostgreSQL's usual packages, but not everywhere. Without it the search still works and
-- reads every name.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%); name searches will read every workspace name', SQLERRM;
END $$;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX workspaces_name_trgm_idx ON workspaces USING gin (name gin_trgm_ops)
            WHERE NOT deleted;
    END IF;
END $$;
