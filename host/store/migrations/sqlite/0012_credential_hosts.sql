-- The allowed hosts that receive a connection's credentials (JSON list of
-- exact hosts); empty: the host of its `base_url` or `instance_url`
-- setting, else its first allowed host.
ALTER TABLE connections ADD COLUMN credential_hosts TEXT NOT NULL DEFAULT '[]';
