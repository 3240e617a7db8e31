package outbox

import "context"

// SetAfterPublish has relays run f after a batch is published and before
// it is marked; an error from f stands for a crash there.
func (s *Service) SetAfterPublish(f func() error) { s.afterPublish = f }

// RelayOnce relays one batch and returns its size.
func (s *Service) RelayOnce(ctx context.Context) (int, error) { return s.relay(ctx) }
