-- The policy view reads "as of a block": a scope's settings, and an app's registration (the `app`
-- set, looked up by member without its scope). The partial `*_current` indexes cannot serve
-- those predicates (`to_block IS NULL OR to_block > $at`), so without these every such read
-- scans every app's rows: with 3,000 apps it was most of a grant's PostgreSQL time.
CREATE INDEX settings_scope ON settings (scope, from_block);
CREATE INDEX members_member ON members (set_name, member, from_block);
