package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// On an external server the accounts are the ones its configuration
// declares: nats-config declares Credentials.TenantAccounts of them,
// S_0000 …, and each tenant that connects is given one of its own, for
// good. Which tenant holds which is kept in the NATS server itself, a
// key-value bucket in the callout's account AUTH, where only Bulkhead's
// auth service ever is (not TENANTS: the operator's user is there, and a
// reply subject, which nats-server does not check against permissions,
// would let it write the bucket), so that every node agrees:
// "slot.<n>" holds its tenant (taken with an atomic create, so two nodes
// cannot give one slot twice) and "tenant.<id>" its slot. A tenant that
// left frees its slot only after slotQuarantine: its connections, whose
// users expire with their tokens, must be gone before another tenant is
// let into that account.

const (
	slotBucket     = "bulkhead_tenant_accounts"
	slotQuarantine = 25 * time.Hour // longer than a token lives (24 h at most)
	releasedPrefix = "released:"
)

// errNoSlot: every tenant account of the server's configuration is taken.
var errNoSlot = errors.New("events: every tenant account of the NATS server's configuration is taken: run bulkhead nats-config with more --tenant-accounts and roll it out")

// slotAccount is the n-th tenant account of an external server.
func slotAccount(n int) string { return fmt.Sprintf("S_%04d", n) }

// slots opens (or makes) the bucket of tenant accounts.
func (s *Server) openSlots(ctx context.Context) error {
	js, err := jetstream.New(s.auth)
	if err != nil {
		return err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: slotBucket, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		return fmt.Errorf("events: the tenant accounts' bucket: %w", err)
	}
	s.slots = kv
	return nil
}

// slotOf is tenant tid's account on an external server, given to it now
// if it has none.
func (s *Server) slotOf(ctx context.Context, tid string) (string, error) {
	if acc, err := s.heldSlot(ctx, tid); acc != "" || err != nil {
		return acc, err
	}
	if s.slots == nil || s.creds.TenantAccounts == 0 {
		return "", errors.New("events: the NATS server's configuration declares no tenant accounts (a nats-config of an earlier version): run bulkhead nats-config again and roll it out")
	}
	now := time.Now()
	for n := range s.creds.TenantAccounts {
		key := "slot." + strconv.Itoa(n)
		rev, err := s.slots.Create(ctx, key, []byte(tid))
		if errors.Is(err, jetstream.ErrKeyExists) {
			e, gerr := s.slots.Get(ctx, key)
			if gerr != nil {
				continue
			}
			held := string(e.Value())
			switch {
			case held == tid:
				rev, err = e.Revision(), nil // ours already: a crash came before "tenant.<id>"
			case strings.HasPrefix(held, releasedPrefix):
				at, perr := strconv.ParseInt(strings.TrimPrefix(held, releasedPrefix), 10, 64)
				if perr != nil || now.Sub(time.Unix(at, 0)) < slotQuarantine {
					continue
				}
				rev, err = s.slots.Update(ctx, key, []byte(tid), e.Revision())
			default:
				continue
			}
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // another node took it meanwhile
			}
			return "", fmt.Errorf("events: take a tenant account: %w", err)
		}
		val := []byte(strconv.Itoa(n))
		// The tenant's record is made atomically too: two nodes that
		// gave one tenant two accounts at once (one lost a released
		// account to the other and went on to the next) agree on the
		// first record, and the other account, which nobody has used,
		// is free again at once.
		_, err = s.slots.Create(ctx, "tenant."+tid, val)
		if errors.Is(err, jetstream.ErrKeyExists) {
			e, gerr := s.slots.Get(ctx, "tenant."+tid)
			if gerr != nil {
				return "", fmt.Errorf("events: read %s's account: %w", tid, gerr)
			}
			if string(e.Value()) != string(val) {
				_, _ = s.slots.Update(ctx, key, []byte(releasedPrefix+"0"), rev)
				return s.cacheSlot(tid, e.Value())
			}
			err = nil
		}
		if err != nil {
			return "", fmt.Errorf("events: record %s's account: %w", tid, err)
		}
		s.cfg.Logger.InfoContext(ctx, "events: a tenant account given", "tenant_id", tid, "account", slotAccount(n))
		return s.cacheSlot(tid, val)
	}
	return "", errNoSlot
}

// heldSlot is tenant tid's account on an external server if it was
// given one, "" if not: it gives none.
func (s *Server) heldSlot(ctx context.Context, tid string) (string, error) {
	if acc, ok := s.slotCache.Load(tid); ok {
		return acc.(string), nil
	}
	if s.slots == nil {
		return "", nil
	}
	e, err := s.slots.Get(ctx, "tenant."+tid)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("events: read %s's account: %w", tid, err)
	}
	return s.cacheSlot(tid, e.Value())
}

func (s *Server) cacheSlot(tid string, v []byte) (string, error) {
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 || n >= s.creds.TenantAccounts {
		return "", fmt.Errorf("events: %s's account %q is not one of the configuration's", tid, v)
	}
	acc := slotAccount(n)
	s.slotCache.Store(tid, acc)
	return acc, nil
}

// releaseSlot frees a leaving tenant's account, for another tenant after
// slotQuarantine.
func (s *Server) releaseSlot(ctx context.Context, tid string) error {
	if s.slots == nil {
		return nil
	}
	e, err := s.slots.Get(ctx, "tenant."+tid)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := s.slots.Put(ctx, "slot."+string(e.Value()), []byte(releasedPrefix+strconv.FormatInt(time.Now().Unix(), 10))); err != nil {
		return err
	}
	s.slotCache.Delete(tid)
	return s.slots.Delete(ctx, "tenant."+tid)
}

// slotAccounts is the configuration of n tenant accounts, with JetStream.
func slotAccounts(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  %s { jetstream: enabled }\n", slotAccount(i))
	}
	return b.String()
}
