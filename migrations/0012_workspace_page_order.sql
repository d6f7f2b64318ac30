-- The workspace page's order puts workspaces whose latest build is a successful start first.
-- Computed from the latest build and its job, that needed every workspace's latest build for
-- every page (a DISTINCT ON over all builds). The fact is kept on the workspace row instead,
-- by triggers: a new build makes it what that build's job says (a new job is pending: false),
-- and a job's status change updates it if the job is the latest build's.
ALTER TABLE workspaces ADD COLUMN latest_build_running boolean NOT NULL DEFAULT false;

UPDATE workspaces w SET latest_build_running = true
FROM workspace_latest_builds b JOIN provisioner_jobs j ON j.id = b.job_id
WHERE b.workspace_id = w.id AND j.job_status = 'succeeded' AND b.transition = 'start';

CREATE FUNCTION workspace_running_on_build() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workspaces w SET latest_build_running = COALESCE(
            (SELECT j.job_status = 'succeeded' FROM provisioner_jobs j WHERE j.id = NEW.job_id), false)
            AND NEW.transition = 'start'
    WHERE w.id = NEW.workspace_id
      AND NOT EXISTS (SELECT 1 FROM workspace_builds x
                      WHERE x.workspace_id = NEW.workspace_id AND x.build_number > NEW.build_number);
    RETURN NULL;
END $$;

CREATE FUNCTION workspace_running_on_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workspaces w SET latest_build_running = (NEW.job_status = 'succeeded' AND b.transition = 'start')
    FROM workspace_builds b
    WHERE b.job_id = NEW.id AND w.id = b.workspace_id
      AND NOT EXISTS (SELECT 1 FROM workspace_builds x
                      WHERE x.workspace_id = b.workspace_id AND x.build_number > b.build_number)
      AND w.latest_build_running IS DISTINCT FROM (NEW.job_status = 'succeeded' AND b.transition = 'start');
    RETURN NULL;
END $$;

CREATE TRIGGER workspace_builds_running AFTER INSERT ON workspace_builds
    FOR EACH ROW EXECUTE FUNCTION workspace_running_on_build();
CREATE TRIGGER provisioner_jobs_running AFTER UPDATE ON provisioner_jobs
    FOR EACH ROW WHEN (OLD.job_status IS DISTINCT FROM NEW.job_status)
    EXECUTE FUNCTION workspace_running_on_job();

