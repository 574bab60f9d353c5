-- Alerts: one row per alert_id holding its highest revision (contract, "Postgres").
CREATE TABLE IF NOT EXISTS alerts (
    alert_id        text PRIMARY KEY,
    revision        integer NOT NULL CHECK (revision >= 1),
    staff_id        text NOT NULL,
    branch_id       text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    risk_score      double precision NOT NULL CHECK (risk_score BETWEEN 0 AND 100),
    first_event_at  timestamptz NOT NULL,
    last_event_at   timestamptz NOT NULL,
    event_ids       text[] NOT NULL,
    event_count     integer NOT NULL,
    reason_codes    text[] NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    verdict         text CHECK (verdict IN ('true_positive', 'false_positive', 'benign_true_positive')),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS alerts_staff_idx ON alerts (staff_id, last_event_at DESC);
CREATE INDEX IF NOT EXISTS alerts_open_idx ON alerts (severity, last_event_at DESC) WHERE status = 'open';
