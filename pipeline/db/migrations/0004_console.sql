-- The analyst console (`pipeline console`): what analysts did with each
-- alert, their comments, an append-only audit log of every action, the
-- outbox of verdicts to publish on {prefix}alert-feedback, and the audited
-- reveal of a pseudonymized customer.
--
-- The console never writes `alerts`, `alert_feedback` or `alerts.verdict`:
-- a verdict reaches those only through the feedback topic and the worker.
-- Functions below that other roles' writes trigger are SECURITY DEFINER with
-- a pinned search_path (this schema, then pg_temp).
SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

CREATE OR REPLACE FUNCTION console_severity_rank(sev text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
    SELECT (CASE sev WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3
                     WHEN 'critical' THEN 4 END)::smallint
$$;

-- One row per alert, created and kept in step by the trigger on `alerts`.
-- The columns after `updated_at` are copies of the alert's queue keys, so
-- that the queue is one index scan of this table (alerts stays the source).
CREATE TABLE IF NOT EXISTS console_workflow (
    alert_id        text PRIMARY KEY REFERENCES alerts (alert_id) ON DELETE CASCADE,
    state           text NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'acknowledged', 'closed')),
    assignee        text,
    assigned_at     timestamptz,
    acknowledged_by text,
    acknowledged_at timestamptz,
    closed_by       text,
    closed_at       timestamptz,
    verdict         text CHECK (verdict IN ('true_positive', 'false_positive',
                                            'benign_true_positive')),
    closed_revision integer,
    closed_severity text,
    reopened_at     timestamptz,
    reopen_count    integer NOT NULL DEFAULT 0,
    version         integer NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    revision        integer NOT NULL,
    severity_rank   smallint NOT NULL,
    risk_score      double precision NOT NULL,
    first_event_at  timestamptz NOT NULL,
    last_event_at   timestamptz NOT NULL,
    staff_id        text NOT NULL,
    branch_id       text NOT NULL,
    staff_role      text,
    reason_codes    text[] NOT NULL
);

-- The queue's order: severity, risk, latest activity; alert_id breaks ties
-- (keyset paging compares the whole tuple).
CREATE INDEX IF NOT EXISTS console_queue_active_idx ON console_workflow
    (severity_rank DESC, risk_score DESC, last_event_at DESC, alert_id DESC)
    WHERE state <> 'closed';
CREATE INDEX IF NOT EXISTS console_queue_all_idx ON console_workflow
    (severity_rank DESC, risk_score DESC, last_event_at DESC, alert_id DESC);
-- The counts per state (each capped, see pipeline/console/pgstore.py) under
-- the usual filters are index(-only) scans of these; branch_id alone serves
-- the list of branches (a loose index scan).
CREATE INDEX IF NOT EXISTS console_queue_state_idx ON console_workflow (state, severity_rank);
CREATE INDEX IF NOT EXISTS console_queue_branch_idx ON console_workflow (branch_id);
CREATE INDEX IF NOT EXISTS console_queue_state_branch_idx ON console_workflow
    (state, branch_id, staff_role);
CREATE INDEX IF NOT EXISTS console_queue_role_idx ON console_workflow (state, staff_role);
CREATE INDEX IF NOT EXISTS console_queue_assignee_idx ON console_workflow (state, assignee);
CREATE INDEX IF NOT EXISTS console_queue_time_idx ON console_workflow (state, last_event_at)
    INCLUDE (first_event_at);
CREATE INDEX IF NOT EXISTS console_queue_staff_idx ON console_workflow (staff_id, last_event_at);
CREATE INDEX IF NOT EXISTS console_queue_reasons_idx ON console_workflow USING gin (reason_codes);

CREATE TABLE IF NOT EXISTS console_comments (
    id         bigserial PRIMARY KEY,
    alert_id   text NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    author     text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('comment', 'verdict')),
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS console_comments_alert_idx ON console_comments (alert_id, created_at);

-- Every action (views of alert and employee pages, workflow changes,
-- comments, logins, reveals and refused reveals). Append-only for the
-- console's role: it is granted INSERT and SELECT, never UPDATE or DELETE.
CREATE TABLE IF NOT EXISTS console_audit (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    action   text NOT NULL,
    alert_id text,
    subject  text,
    reason   text,
    client   text,
    detail   jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS console_audit_alert_idx ON console_audit (alert_id, at);
CREATE INDEX IF NOT EXISTS console_audit_actor_idx ON console_audit (actor, at);
CREATE INDEX IF NOT EXISTS console_audit_action_idx ON console_audit (action, at);

-- Verdicts to publish on {prefix}alert-feedback, written in the same
-- transaction as the workflow change (so a verdict recorded is a verdict
-- published, at least once, even if the broker or the console was down).
-- `value` holds the exact UTF-8 JSON sent, so a re-send is byte-identical.
CREATE TABLE IF NOT EXISTS console_outbox (
    id           bigserial PRIMARY KEY,
    alert_id     text NOT NULL,
    topic        text NOT NULL,
    value        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text
);
CREATE INDEX IF NOT EXISTS console_outbox_pending_idx ON console_outbox (id)
    WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS console_outbox_alert_idx ON console_outbox (alert_id);

-- Keeps console_workflow in step with `alerts` (whoever writes it): a new
-- alert enters the queue as open; a later revision refreshes the queue keys,
-- and re-opens a closed alert when its severity is higher than the severity
-- of the revision it was closed on (an escalation), recording that in the
-- audit log as done by `pipeline`.
CREATE OR REPLACE FUNCTION console_track_alert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    w console_workflow%ROWTYPE;
    new_rank smallint := console_severity_rank(NEW.severity);
BEGIN
    SELECT * INTO w FROM console_workflow WHERE alert_id = NEW.alert_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO console_workflow (alert_id, revision, severity_rank, risk_score,
                                      first_event_at, last_event_at, staff_id, branch_id,
                                      staff_role, reason_codes)
        VALUES (NEW.alert_id, NEW.revision, new_rank, NEW.risk_score, NEW.first_event_at,
                NEW.last_event_at, NEW.staff_id, NEW.branch_id, NEW.staff_role,
                NEW.reason_codes)
        ON CONFLICT (alert_id) DO NOTHING;
        RETURN NULL;
    END IF;
    IF w.state = 'closed' AND NEW.revision > coalesce(w.closed_revision, 0)
       AND new_rank > coalesce(console_severity_rank(w.closed_severity), 0) THEN
        UPDATE console_workflow SET state = 'open', reopened_at = now(),
               reopen_count = reopen_count + 1, version = version + 1, updated_at = now()
         WHERE alert_id = NEW.alert_id;
        INSERT INTO console_audit (actor, action, alert_id, detail)
        VALUES ('pipeline', 'reopen', NEW.alert_id,
                jsonb_build_object('revision', NEW.revision, 'severity', NEW.severity,
                                   'closed_revision', w.closed_revision,
                                   'closed_severity', w.closed_severity,
                                   'verdict', w.verdict));
    END IF;
    UPDATE console_workflow SET revision = NEW.revision, severity_rank = new_rank,
           risk_score = NEW.risk_score, first_event_at = NEW.first_event_at,
           last_event_at = NEW.last_event_at, staff_id = NEW.staff_id,
           branch_id = NEW.branch_id, staff_role = NEW.staff_role,
           reason_codes = NEW.reason_codes
     WHERE alert_id = NEW.alert_id
       AND (revision, severity_rank, risk_score, last_event_at, staff_role, reason_codes)
           IS DISTINCT FROM (NEW.revision, new_rank, NEW.risk_score, NEW.last_event_at,
                             NEW.staff_role, NEW.reason_codes);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER console_track_alert
    AFTER INSERT OR UPDATE OF revision, severity, risk_score, last_event_at, staff_role,
                              reason_codes
    ON alerts FOR EACH ROW EXECUTE FUNCTION console_track_alert();

-- A verdict that reached the pipeline some other way (another tool writing
-- the feedback topic) closes the console's row too, unless the alert was
-- re-opened after that verdict was given.
CREATE OR REPLACE FUNCTION console_track_feedback() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
BEGIN
    UPDATE console_workflow w SET state = 'closed', verdict = NEW.verdict,
           closed_by = NEW.analyst_id, closed_at = NEW.decided_at,
           closed_revision = w.revision, closed_severity = a.severity,
           version = w.version + 1, updated_at = now()
      FROM alerts a
     WHERE w.alert_id = NEW.alert_id AND a.alert_id = w.alert_id AND w.state <> 'closed'
       AND (w.reopened_at IS NULL OR NEW.decided_at > w.reopened_at);
    IF FOUND THEN
        INSERT INTO console_audit (actor, action, alert_id, detail)
        VALUES (NEW.analyst_id, 'close_from_feedback', NEW.alert_id,
                jsonb_build_object('verdict', NEW.verdict));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER console_track_feedback
    AFTER INSERT ON alert_feedback FOR EACH ROW EXECUTE FUNCTION console_track_feedback();

-- Alerts stored before this migration enter the queue; those that already
-- have a verdict enter it closed.
INSERT INTO console_workflow (alert_id, state, verdict, closed_by, closed_at, closed_revision,
                              closed_severity, revision, severity_rank, risk_score,
                              first_event_at, last_event_at, staff_id, branch_id, staff_role,
                              reason_codes)
SELECT alert_id,
       CASE WHEN verdict IS NULL THEN 'open' ELSE 'closed' END,
       verdict,
       CASE WHEN verdict IS NULL THEN NULL ELSE 'feedback before the console' END,
       CASE WHEN verdict IS NULL THEN NULL ELSE updated_at END,
       CASE WHEN verdict IS NULL THEN NULL ELSE revision END,
       CASE WHEN verdict IS NULL THEN NULL ELSE severity END,
       revision, console_severity_rank(severity), risk_score, first_event_at, last_event_at,
       staff_id, branch_id, staff_role, reason_codes
  FROM alerts
ON CONFLICT (alert_id) DO NOTHING;

-- The one way to read customer_reveal: records who, when, why and which
-- reference in the audit log, then returns the raw id (NULL when the
-- pseudonym is unknown, which is recorded too). Whether the analyst holds
-- the reveal role is the console's check (roles come from the proxy).
CREATE OR REPLACE FUNCTION console_reveal(p_actor text, p_ref text, p_reason text,
                                          p_alert_id text, p_client text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    raw text;
BEGIN
    IF p_actor IS NULL OR btrim(p_actor) = '' THEN
        RAISE EXCEPTION 'a reveal needs the analyst''s identity' USING ERRCODE = '22023';
    END IF;
    IF p_reason IS NULL OR length(btrim(p_reason)) < 5 THEN
        RAISE EXCEPTION 'a reveal needs a reason (at least 5 characters)' USING ERRCODE = '22023';
    END IF;
    SELECT customer_id INTO raw FROM customer_reveal WHERE customer_ref = p_ref;
    INSERT INTO console_audit (actor, action, alert_id, subject, reason, client)
    VALUES (p_actor, CASE WHEN raw IS NULL THEN 'reveal_unknown' ELSE 'reveal' END,
            p_alert_id, p_ref, btrim(p_reason), p_client);
    RETURN raw;
END
$$;

REVOKE ALL ON customer_reveal FROM PUBLIC;
REVOKE ALL ON FUNCTION console_reveal(text, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION console_track_alert() FROM PUBLIC;
REVOKE ALL ON FUNCTION console_track_feedback() FROM PUBLIC;

-- The console's database role: a NOLOGIN group `access_watch_console`
-- (created here when the migrating role may create roles; otherwise a DBA
-- creates it and re-runs the grants below, see docs/console.md). The
-- console logs in as a member of it: it reads the alert tables, writes only
-- its own, appends to the audit log, and reads raw customer ids only
-- through console_reveal.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'access_watch_console') THEN
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = current_user
                   AND (rolcreaterole OR rolsuper)) THEN
            CREATE ROLE access_watch_console NOLOGIN;
        ELSE
            RAISE NOTICE 'role access_watch_console is missing and % may not create it; '
                         'the console must then run as the owner (development only)', current_user;
            RETURN;
        END IF;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO access_watch_console', current_schema());
    GRANT SELECT ON alerts, alert_revisions, alert_evidence, alert_feedback
        TO access_watch_console;
    GRANT SELECT, INSERT, UPDATE ON console_workflow, console_comments, console_outbox
        TO access_watch_console;
    GRANT SELECT, INSERT ON console_audit TO access_watch_console;
    GRANT USAGE ON SEQUENCE console_comments_id_seq, console_audit_id_seq, console_outbox_id_seq
        TO access_watch_console;
    GRANT EXECUTE ON FUNCTION console_reveal(text, text, text, text, text)
        TO access_watch_console;
END
$$;
