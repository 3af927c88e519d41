-- The layout of a month's first archive. An export again writes the same layout, so that the same
-- history gives the same bytes; the months exported before layouts were recorded were written in
-- the first one.
ALTER TABLE month_archives ADD COLUMN format TEXT NOT NULL DEFAULT 'joinin-month-archive/1';
