-- 001_init.sql - the mulefarm job queue (schema mulefarm).
--
-- Applied by dbq_migrate() inside one transaction, under an advisory lock,
-- and recorded in mulefarm.schema_version (created by dbq_migrate itself).
-- Do not edit a migration once released: add NNN_*.sql instead.
--
-- The hot table, mulefarm.jobs, holds only queued and running jobs. A job
-- that is done or discarded is moved (DELETE ... RETURNING feeding an
-- INSERT, one statement) into mulefarm.history, which is append-only and
-- pruned by age: the claim index and the hot heap stay as small as the
-- backlog, however many jobs went through.

CREATE SCHEMA IF NOT EXISTS mulefarm;

CREATE TABLE mulefarm.jobs (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	uuid         uuid NOT NULL,
	farm         text NOT NULL CHECK (octet_length(farm) BETWEEN 1 AND 54),
	payload      bytea NOT NULL,
	-- 'queued' (including a failed job waiting for its retry: last_error
	-- is set) or 'running'; 'done' and 'discarded' live in history.
	state        text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running')),
	priority     integer NOT NULL DEFAULT 0,            -- lower runs first
	run_at       timestamptz NOT NULL DEFAULT now(),
	handler      text COLLATE "C",                       -- host.farm.N; NULL until claimed
	attempt      integer NOT NULL DEFAULT 0,             -- runs started
	max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
	lease_until  timestamptz,
	unique_key   text,
	created_at   timestamptz NOT NULL DEFAULT now(),
	claimed_at   timestamptz,
	last_error   text
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.0,
	autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_insert_scale_factor = 0.0,
	autovacuum_vacuum_insert_threshold = 50000, autovacuum_vacuum_cost_delay = 0,
	-- The table's size swings with the backlog: giving empty pages back
	-- costs VACUUM an exclusive lock (which it waits for, in 50 ms steps,
	-- behind every claim) and the next burst re-extends the file.
	vacuum_truncate = false);

-- The claim walks this index in its ORDER BY; a claimed row leaves it.
CREATE INDEX jobs_queued ON mulefarm.jobs (farm, priority, run_at, id) WHERE state = 'queued';
-- Renewal (a range of handler names: host.*) and lease expiry.
CREATE INDEX jobs_running ON mulefarm.jobs (handler) WHERE state = 'running';
-- Idempotent enqueue (a client-generated uuid), job lookup.
CREATE UNIQUE INDEX jobs_uuid ON mulefarm.jobs (uuid);
-- At most one queued or running job per (farm, unique_key).
CREATE UNIQUE INDEX jobs_unique_key ON mulefarm.jobs (farm, unique_key)
	WHERE unique_key IS NOT NULL AND state IN ('queued', 'running');

-- Finished jobs, kept for the retention period (dbq_prune). Append-only:
-- no update ever touches it. The payload is kept for discarded jobs only
-- (to inspect or re-enqueue them).
CREATE TABLE mulefarm.history (
	id           bigint NOT NULL,
	uuid         uuid NOT NULL,
	farm         text NOT NULL,
	state        text NOT NULL CHECK (state IN ('done', 'discarded')),
	priority     integer NOT NULL,
	handler      text COLLATE "C",
	attempt      integer NOT NULL,
	max_attempts integer NOT NULL,
	created_at   timestamptz NOT NULL,
	finished_at  timestamptz NOT NULL DEFAULT now(),
	payload      bytea,
	last_error   text
) WITH (autovacuum_vacuum_insert_scale_factor = 0.0,
	autovacuum_vacuum_insert_threshold = 1000000);

-- Not unique: a uuid re-enqueued in the instant its first run completes
-- may finish twice (enqueue checks history, but not atomically with a
-- concurrent completion), and completion must not
-- fail for it.
CREATE INDEX history_uuid ON mulefarm.history (uuid);
-- Rows arrive in finished_at order: a BRIN index serves pruning for a
-- few pages.
CREATE INDEX history_finished ON mulefarm.history USING brin (finished_at);

-- The NOTIFY channel of a farm (what dbq_listen LISTENs on).
CREATE FUNCTION mulefarm.channel(farm text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT 'mulefarm:' || farm $$;

-- The wait before retrying a job whose attempt <attempt> failed:
-- exponential (2^attempt s, at most an hour) with +-25% jitter, so that
-- jobs failing together do not come back together. A later migration may
-- replace it (CREATE OR REPLACE); dbq_fail() calls it.
CREATE FUNCTION mulefarm.retry_delay(attempt integer) RETURNS interval
LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
AS $$ SELECT least(power(2, least(attempt, 12)), 3600) * (0.75 + random() * 0.5) * interval '1 second' $$;

-- Enqueue from SQL, inside the application's own transaction: the job
-- becomes visible (and claimable) when that transaction commits, and
-- disappears if it rolls back. Returns the new job's uuid, or NULL when
-- <unique_key> is already held by a queued or running job of <farm>.
--
-- <notify> (default true) also sends pg_notify on the farm's channel, so
-- that waiting handlers wake at once. Notifications are transactional:
-- they are delivered at commit (never for a rollback), and several
-- enqueues of one transaction send one. The price: a transaction that
-- notifies takes a cluster-wide lock at commit and holds it until the
-- commit is durable, so all notifying transactions commit one after the
-- other (each waiting for the previous one's WAL flush). That is harmless
-- at tens of commits per second; for a high rate of enqueueing
-- transactions pass notify => false and notify separately after commit
-- (dbq_notify, coalesced), or rely on the handlers' poll.
CREATE FUNCTION mulefarm.enqueue(
	farm text,
	payload bytea,
	priority integer DEFAULT 0,
	run_at timestamptz DEFAULT now(),
	max_attempts integer DEFAULT 5,
	unique_key text DEFAULT NULL,
	notify boolean DEFAULT true)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	new_uuid uuid;
BEGIN
	INSERT INTO mulefarm.jobs AS j (uuid, farm, payload, priority, run_at, max_attempts, unique_key)
	VALUES (gen_random_uuid(), enqueue.farm, enqueue.payload, coalesce(enqueue.priority, 0),
		coalesce(enqueue.run_at, now()), coalesce(enqueue.max_attempts, 5), enqueue.unique_key)
	ON CONFLICT DO NOTHING
	RETURNING j.uuid INTO new_uuid;
	IF new_uuid IS NOT NULL AND notify THEN
		PERFORM pg_notify(mulefarm.channel(enqueue.farm), '');
	END IF;
	RETURN new_uuid;
END
$$;

-- The same with a text payload (stored as its UTF-8 bytes).
CREATE FUNCTION mulefarm.enqueue(
	farm text,
	payload text,
	priority integer DEFAULT 0,
	run_at timestamptz DEFAULT now(),
	max_attempts integer DEFAULT 5,
	unique_key text DEFAULT NULL,
	notify boolean DEFAULT true)
RETURNS uuid
LANGUAGE sql VOLATILE
AS $$ SELECT mulefarm.enqueue(farm, convert_to(payload, 'UTF8'), priority, run_at, max_attempts,
	unique_key, notify) $$;
