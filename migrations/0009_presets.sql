-- Template presets (`coder_workspace_preset`, or the echo archive's `presets`): named sets of
-- parameter values a workspace can be created with. Their values are a list of
-- {"name", "value"} in the template's order.
CREATE TABLE template_version_presets (
    id uuid PRIMARY KEY,
    template_version_id uuid NOT NULL REFERENCES template_versions (id) ON DELETE CASCADE,
    display_order integer NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    icon text NOT NULL DEFAULT '',
    is_default boolean NOT NULL DEFAULT false,
    parameters jsonb NOT NULL DEFAULT '[]',
    UNIQUE (template_version_id, name)
);

-- The preset a build was made with, as upstream's builds record it.
ALTER TABLE workspace_builds
    ADD COLUMN template_version_preset_id uuid REFERENCES template_version_presets (id) ON DELETE SET NULL;

-- The view's `*` was expanded when it was made; take the new column in.
CREATE OR REPLACE VIEW workspace_latest_builds AS
    SELECT DISTINCT ON (workspace_id) * FROM workspace_builds ORDER BY workspace_id, build_number DESC;
