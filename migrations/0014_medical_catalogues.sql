-- Medical catalogues are a fourth kind of tariff: each city's drugs, services and consumables by
-- code, with their class and price ceiling, in versions by effective date, uploaded as the other
-- kinds are. The kind's check is replaced to admit it; PostgreSQL and CockroachDB name the
-- original check differently, so both names are dropped if present.
ALTER TABLE tariff_kinds DROP CONSTRAINT IF EXISTS tariff_kinds_kind_check;
ALTER TABLE tariff_kinds DROP CONSTRAINT IF EXISTS check_kind;
ALTER TABLE tariff_kinds ADD CONSTRAINT tariff_kinds_kind_known
    CHECK (kind IN ('fares', 'fee_plans', 'medical_policies', 'medical_catalogues'));
INSERT INTO tariff_kinds (kind, versions, updated_at) VALUES ('medical_catalogues', 0, now());
