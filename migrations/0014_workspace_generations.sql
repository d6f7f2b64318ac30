-- The workspace page's total (`count`) counts every match, which at 10,000 workspaces cost
-- more than the rest of the page. Totals are kept in each process and reused while nothing
-- they depend on changed, and these counters say whether something did: every statement that
-- inserts, deletes or changes a column a cached total filters on bumps one of them, in its own
-- transaction. A reader takes all of them in the same snapshot as what it counts; a total is
-- reused only while a later snapshot shows the same values (Store::list_workspaces).
--
-- Several rows so that writers do not wait on each other: a writer bumps a row no other
-- transaction holds (SKIP LOCKED never waits, so this cannot deadlock), or adds a row when all
-- are held. Rows are never removed; there are at most as many as writers ever ran at once.
CREATE TABLE workspace_generations (
    shard integer PRIMARY KEY,
    generation bigint NOT NULL DEFAULT 0
);
INSERT INTO workspace_generations (shard) SELECT generate_series(0, 15);
CREATE SEQUENCE workspace_generation_shards START 16;

CREATE FUNCTION workspace_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workspace_generations SET generation = generation + 1
    WHERE shard = (SELECT g.shard FROM workspace_generations g LIMIT 1 FOR UPDATE SKIP LOCKED);
    IF NOT FOUND THEN
        INSERT INTO workspace_generations (shard, generation)
        VALUES (nextval('workspace_generation_shards'), 1);
    END IF;
    RETURN NULL;
END $$;

-- The columns the cacheable filters read (Store::list_workspaces; `last_used_at` is not
-- among them: it changes with every use, and filters on it are counted each time).
CREATE TRIGGER workspaces_generation_rows
    AFTER INSERT OR DELETE OR UPDATE OF id, deleted, owner_id, owner_username, name, dormant_at,
        organization_id, user_acl, group_acl
    ON workspaces FOR EACH STATEMENT EXECUTE FUNCTION workspace_generation_bump();
CREATE TRIGGER workspaces_generation_truncate
    AFTER TRUNCATE ON workspaces FOR EACH STATEMENT EXECUTE FUNCTION workspace_generation_bump();
