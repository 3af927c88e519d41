-- A dead letter whose bytes held what may be a personal number is stored redacted (its reason
-- says what was taken out, by field), with the HMAC-SHA256 of the original bytes under the token
-- key: whoever holds the key can tell whether a message is the one refused, no one else can test
-- a guess of the numbers it held. NULL when nothing was redacted, or no key was configured.
ALTER TABLE dead_letters ADD COLUMN payload_hmac BYTEA;
