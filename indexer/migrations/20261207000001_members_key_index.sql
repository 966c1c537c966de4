-- The policy view's per-app boot read looks members up by set, scope and member "as of a block",
-- and runs on a generic plan (planned once per connection, not per execution: planning was 80 %
-- of its cost). A generic plan cannot see that every app shares a compose hash, so with only
-- `members_member` (set, member, from) it scanned every app's row of that hash; with the scope in
-- the key, each branch is one index probe whatever the values.
CREATE INDEX members_key ON members (set_name, scope, member, from_block);
