package events

import "context"

// DeleteOperatorStream deletes the operator's stream, as a new cluster
// would not have it.
func DeleteOperatorStream(ctx context.Context, s *Server) error {
	return s.streams.DeleteStream(ctx, OperatorStream)
}
