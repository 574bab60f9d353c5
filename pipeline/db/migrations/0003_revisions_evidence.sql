-- Every revision of every alert (the alerts table keeps only the highest),
-- the access events each incident covers (the evidence store), and the raw
-- customer id behind each pseudonym, for the console's audited reveal.

CREATE TABLE IF NOT EXISTS alert_revisions (
    alert_id     text NOT NULL,
    revision     integer NOT NULL CHECK (revision >= 1),
    severity     text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    risk_score   double precision NOT NULL CHECK (risk_score BETWEEN 0 AND 100),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    event_count  integer NOT NULL,
    reason_codes text[] NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_id, revision)
);

-- One row per (incident, access event); at most 500 events per incident
-- (the pipeline bounds it). customer_ref is the same keyed hash as the
-- alert's customer_refs; the raw id is only in customer_reveal.
CREATE TABLE IF NOT EXISTS alert_evidence (
    alert_id       text NOT NULL,
    event_id       text NOT NULL,
    occurred_at    timestamptz NOT NULL,
    staff_id       text NOT NULL,
    action         text NOT NULL,
    channel        text NOT NULL,
    branch_id      text NOT NULL,
    customer_ref   text,
    record_count   bigint NOT NULL,
    outcome        text NOT NULL,
    reason_codes   text[] NOT NULL,
    first_revision integer NOT NULL,
    PRIMARY KEY (alert_id, event_id)
);
CREATE INDEX IF NOT EXISTS alert_evidence_time_idx ON alert_evidence (alert_id, occurred_at);

-- Pseudonym -> raw customer id. Read only through the console's audited
-- reveal (see the console's migration for the function and its grants).
CREATE TABLE IF NOT EXISTS customer_reveal (
    customer_ref text PRIMARY KEY,
    customer_id  text NOT NULL
);

-- Role of the employee at the time of the alert (optional Alert field
-- staff_role), for the console's filters.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS staff_role text;
CREATE INDEX IF NOT EXISTS alerts_queue_idx ON alerts (status, severity, risk_score DESC, last_event_at DESC);

-- Verdicts are routed to the worker that holds the employee's state once the
-- alert they name is stored (a verdict may arrive before its alert).
ALTER TABLE alert_feedback ADD COLUMN IF NOT EXISTS routed_at timestamptz;
CREATE INDEX IF NOT EXISTS alert_feedback_unrouted_idx ON alert_feedback (alert_id)
    WHERE routed_at IS NULL;
