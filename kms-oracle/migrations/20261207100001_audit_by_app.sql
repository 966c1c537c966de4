-- An app's decisions, newest first (`GET /v1/audit?app=…`, `covenant kms grants --app`).
CREATE INDEX audit_log_by_app ON audit_log (node, app_id, seq DESC) WHERE app_id IS NOT NULL;
