-- The gateway's routes set through the API (routes from the routes file
-- are not stored). route is the route as JSON (gateway.Route); host and
-- path_prefix are copied out of it for reading.
CREATE TABLE gateway_routes (
	id          TEXT PRIMARY KEY,
	host        TEXT NOT NULL,
	path_prefix TEXT NOT NULL,
	route       TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL
);
