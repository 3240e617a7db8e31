-- A chain's timeline, newest first, pages by id: without this index a
-- tenant's page reads and sorts its whole chain.
CREATE INDEX audit_events_chain_id ON audit_events(chain, id);
