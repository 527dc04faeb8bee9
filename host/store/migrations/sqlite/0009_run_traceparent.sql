-- The W3C trace context of each run's business transaction: the parent of
-- the spans of every part of the run, so a run resumed by another worker or
-- after a restart continues the trace it started in.
ALTER TABLE runs ADD COLUMN traceparent TEXT;
