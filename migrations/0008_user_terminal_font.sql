-- The terminal font a user picked for the web terminal (GET|PUT /users/{user}/appearance);
-- '' is the default font.
ALTER TABLE users ADD COLUMN terminal_font text NOT NULL DEFAULT '';
