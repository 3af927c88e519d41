-- Items by bank, cycle and amount: an entry without a reference is suggested for an item of its
-- amount in a cycle paid near its own value date (reconcile's suggest_days), and its candidates
-- are read as one probe per cycle and amount. By (bank_id, amount) the read took every item of the
-- amount in the bank's history; by cycle, every item of the bank in those days: with a common
-- amount or a bank of many parties, either grew with the years or with the bank.
CREATE INDEX settlement_items_cycle_amount ON settlement_items (bank_id, cycle_date, amount);
-- The index the suggestions read until now: nothing else reads items by bank and amount, and a
-- lookup by bank alone has the index above.
DROP INDEX IF EXISTS settlement_items_amount;
