-- The planner must know how many pre-saves are open. After a year of
-- history (a million finished pre-saves, vacuumed and analysed) the
-- partial indexes over open work look empty to it, and autoanalyze
-- waits for 10 % of the table to change: a new release's finishes then
-- scanned the whole open index to find one row by its ID, instead of
-- the primary key. Analyse after 1 % of the table (at least 1,000 rows)
-- changed; the relay also analyses when a release goes live
-- (store.ClaimDuePresaves).
ALTER TABLE presaves SET (autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 1000);
