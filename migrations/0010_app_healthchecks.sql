-- What the agent checks to report an app's health (coder_app's healthcheck block): a URL
-- polled every `interval` seconds, unhealthy after `threshold` failures in a row. An app
-- without a URL stays "disabled"; one with a URL starts "initializing".
ALTER TABLE workspace_apps
    ADD COLUMN healthcheck_url text NOT NULL DEFAULT '',
    ADD COLUMN healthcheck_interval integer NOT NULL DEFAULT 0,
    ADD COLUMN healthcheck_threshold integer NOT NULL DEFAULT 0;
