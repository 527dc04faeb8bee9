-- The claim takes the active run due first: ORDER BY next_at, created_at over
-- the active runs only. With this partial index it reads the front of the
-- index instead of sorting every active run.
CREATE INDEX runs_claim ON runs (next_at, created_at)
    WHERE status IN ('pending', 'running', 'compensating');
