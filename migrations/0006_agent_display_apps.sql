-- The built-in apps an agent offers (Coder's display_apps: vscode, vscode_insiders, ssh_helper,
-- port_forwarding_helper, web_terminal), as its template chose them. Agents from before this
-- get the coder provider's defaults.
ALTER TABLE workspace_agents
    ADD COLUMN display_apps text[] NOT NULL
        DEFAULT '{vscode,ssh_helper,port_forwarding_helper,web_terminal}';
