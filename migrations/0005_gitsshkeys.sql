-- Each user's Git SSH key pair: agents sign Git operations with the private key, and the user
-- registers the public key with their Git host. Created on first read, replaced on request.
CREATE TABLE gitsshkeys (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    private_key text NOT NULL,
    public_key text NOT NULL
);
