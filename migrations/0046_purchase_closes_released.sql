-- The closes that released part of a hold (a void, a capture below what was held), by card and
-- time: a card's approvals of the day are its holds of the day less what these released of them,
-- so the daily limit follows only the day's releasing closes to their holds, instead of looking
-- for a close of each of the day's authorizations.
CREATE INDEX purchase_closes_released ON purchase_closes (card_token, created_at) WHERE released > 0;
