package storage

import (
	"context"
	"errors"
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
// failure and pings when idle (so that a connection dropped silently by the
// network is noticed within a minute). Notifications sent while no
// connection listens are lost, so Listen calls down when a connection is
// lost and up once a new one listens, before any fn call from it: a cache
// stops caching in between and drops everything it holds. On SQLite Listen
// calls up and returns (one process owns the database; see Tx.Notify).
//
// Listen blocks; run it in its own goroutine.
func (db *DB) Listen(ctx context.Context, channel string, log *slog.Logger, up, down func(), fn func(payload string)) {
	if db.dialect != Postgres {
		up()
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		listened, err := db.listenOnce(ctx, channel, up, fn)
		down()
		if ctx.Err() != nil {
			return
		}
		if listened {
			backoff = 100 * time.Millisecond
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

// listenIdle is how long a listening connection waits before it pings.
const listenIdle = 30 * time.Second

func (db *DB) listenOnce(ctx context.Context, channel string, up func(), fn func(string)) (listened bool, err error) {
	conn, err := pgx.Connect(ctx, db.dsn)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	up()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			fn(n.Payload)
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, fmt.Errorf("ping: %w", err)
			}
		default:
			return true, err
		}
	}
}
