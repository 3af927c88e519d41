-- When the issuer issued each card: its registration's occurred_at. An offline purchase dated
-- well before it names a card no terminal could have read, and is refused. Cards registered
-- before this column have none, and their purchases are judged as before.
ALTER TABLE cards ADD COLUMN issued_at TIMESTAMPTZ;
