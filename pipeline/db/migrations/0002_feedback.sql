-- Analyst verdicts, kept even when they arrive before the alert row (the sink may lag).
CREATE TABLE IF NOT EXISTS alert_feedback (
    alert_id    text NOT NULL,
    verdict     text NOT NULL CHECK (verdict IN ('true_positive', 'false_positive', 'benign_true_positive')),
    analyst_id  text NOT NULL,
    comment     text,
    decided_at  timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_id, decided_at, analyst_id)
);
