-- A pre-save attempt holds a lease in PostgreSQL while it runs, so two
-- tasks of the same generation can never run it at once, even after Redis
-- lost its data (and with it the workers' Redis locks and the asynq
-- TaskIDs that normally keep a task unique). A crashed attempt's lease
-- simply lapses.
ALTER TABLE presaves ADD COLUMN lease_until timestamptz;

-- The sweeper looks for pre-saves stuck running, oldest start first.
CREATE INDEX presaves_running_started ON presaves (started_at) WHERE status = 'running';
