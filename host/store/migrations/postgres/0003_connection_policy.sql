-- Per-connection egress grants for non-public addresses, outbound rate
-- limit and inbound webhook verification.
ALTER TABLE connections ADD COLUMN private_hosts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE connections ADD COLUMN rate_limit TEXT;
ALTER TABLE connections ADD COLUMN webhook TEXT;
