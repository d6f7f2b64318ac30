-- A new build set its workspace's latest_build_running even when it already had that value
-- (every creation: a new workspace is not running, and neither is its first build's pending
-- job), writing a new version of the workspace row for nothing. Now only a change is written,
-- as the job trigger already does.
CREATE OR REPLACE FUNCTION workspace_running_on_build() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workspaces w SET latest_build_running = COALESCE(
            (SELECT j.job_status = 'succeeded' FROM provisioner_jobs j WHERE j.id = NEW.job_id), false)
            AND NEW.transition = 'start'
    WHERE w.id = NEW.workspace_id
      AND w.latest_build_running IS DISTINCT FROM (COALESCE(
            (SELECT j.job_status = 'succeeded' FROM provisioner_jobs j WHERE j.id = NEW.job_id), false)
            AND NEW.transition = 'start')
      AND NOT EXISTS (SELECT 1 FROM workspace_builds x
                      WHERE x.workspace_id = NEW.workspace_id AND x.build_number > NEW.build_number);
    RETURN NULL;
END $$;
