-- A fund's business day, as its writers and its reconciliation share it: one row per fund and
-- day, made by the day's first settlement, cancellation, reversal, refund or final bill, or by the
-- first reconciliation of it once the day is past. Every write that counts in a day holds the
-- day's row FOR SHARE until it commits and is refused if the day is closed; the first report of a
-- past day sets closed_at under the row's exclusive lock, so it waits for the writes in flight
-- and no later one counts in the day: a closed day's totals never change.
CREATE TABLE medical_days (
    fund_city    TEXT        NOT NULL,
    business_day DATE        NOT NULL,
    closed_at    TIMESTAMPTZ,
    PRIMARY KEY (fund_city, business_day)
);
