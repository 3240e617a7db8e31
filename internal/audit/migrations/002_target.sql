-- Reads of one target's events in a chain (a connection's activity).
CREATE INDEX audit_events_target ON audit_events(chain, target, id);
