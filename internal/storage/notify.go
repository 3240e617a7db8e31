package storage

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notify tells every node listening on channel (see DB.Listen) that
// something changed, when the transaction commits: on PostgreSQL with
// pg_notify, which is delivered at commit and dropped on rollback. On SQLite,
// whose database belongs to one process, it does nothing; the writer
// invalidates its own caches after the commit.
func (tx *Tx) Notify(ctx context.Context, channel, payload string) error {
	if tx.dialect != Postgres {
		return nil
	}
	if _, err := tx.tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("storage: notify %s: %w", channel, err)
	}
	return nil
}

// Listen calls fn with the payload of every notification on channel until
// ctx ends, from a dedicated PostgreSQL connection that it redials after a
// failure. Notifications sent while the connection was down are lost, so
// after every (re)connection Listen calls resync, before any fn call from
// that connection: a cache drops everything it holds there. On SQLite Listen
// returns at once (one process owns the database; see Tx.Notify).
//
// Listen blocks; run it in its own goroutine.
func (db *DB) Listen(ctx context.Context, channel string, log *slog.Logger, resync func(), fn func(payload string)) {
	if db.dialect != Postgres {
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, channel, resync, fn)
		if ctx.Err() != nil {
			return
		}
		log.WarnContext(ctx, "storage: listen connection lost; redialing", "channel", channel, "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (db *DB) listenOnce(ctx context.Context, channel string, resync func(), fn func(string)) error {
	conn, err := pgx.Connect(ctx, db.dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	resync()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
