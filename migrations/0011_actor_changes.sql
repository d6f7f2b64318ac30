-- Every process keeps the callers of API keys in memory (crates/coderd/src/actors.rs). A write
-- to anything authentication reads about a caller (the key itself, the user's name, status,
-- deletion and site roles, organization memberships and roles, group memberships) tells every
-- process, through the pubsub's channel, to forget that user's cached keys. Triggers, not the
-- handlers, send it, so no write path (a cascade, an admin's SQL) can be forgotten. The
-- message goes out when the writing transaction commits.
CREATE FUNCTION notify_actor_changed(user_id uuid) RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify('coderd_pubsub', 'actor_changed' || E'\n' || user_id::text);
$$;

CREATE FUNCTION actor_changed_by_user_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM notify_actor_changed(OLD.user_id);
    ELSE
        PERFORM notify_actor_changed(NEW.user_id);
        IF TG_OP = 'UPDATE' AND OLD.user_id IS DISTINCT FROM NEW.user_id THEN
            PERFORM notify_actor_changed(OLD.user_id);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION actor_changed_by_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_actor_changed(NEW.id);
    RETURN NULL;
END $$;

-- A key revoked, or its secret, expiry, scope or lifetime changed. Recording its use
-- (`last_used`, the client address) changes nothing authentication decides on.
CREATE TRIGGER api_keys_actor_deleted AFTER DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION actor_changed_by_user_id();
CREATE TRIGGER api_keys_actor_updated AFTER UPDATE ON api_keys
    FOR EACH ROW WHEN (
        OLD.hashed_secret IS DISTINCT FROM NEW.hashed_secret
        OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
        OR OLD.scope IS DISTINCT FROM NEW.scope
        OR OLD.login_type IS DISTINCT FROM NEW.login_type
        OR OLD.lifetime_seconds IS DISTINCT FROM NEW.lifetime_seconds
        OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION actor_changed_by_user_id();

-- Suspended, reactivated, deleted, renamed, or given other site roles. (A hard delete
-- cascades to the user's keys, whose trigger speaks for it.)
CREATE TRIGGER users_actor_updated AFTER UPDATE ON users
    FOR EACH ROW WHEN (
        OLD.username IS DISTINCT FROM NEW.username
        OR OLD.status IS DISTINCT FROM NEW.status
        OR OLD.deleted IS DISTINCT FROM NEW.deleted
        OR OLD.rbac_roles IS DISTINCT FROM NEW.rbac_roles)
    EXECUTE FUNCTION actor_changed_by_id();

-- Joined or left an organization or a group, or given other organization roles (also when an
-- organization or a group is deleted: the cascade deletes these rows one by one).
CREATE TRIGGER organization_members_actor_changed AFTER INSERT OR UPDATE OR DELETE ON organization_members
    FOR EACH ROW EXECUTE FUNCTION actor_changed_by_user_id();
CREATE TRIGGER group_members_actor_changed AFTER INSERT OR UPDATE OR DELETE ON group_members
    FOR EACH ROW EXECUTE FUNCTION actor_changed_by_user_id();
