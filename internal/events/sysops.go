package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// What Bulkhead watches of the tenants' connections (live.go, rate.go)
// it reads from the server: the embedded one directly, an external one
// through Bulkhead's user in the system account, whose requests every
// server of a cluster answers ($SYS.REQ.SERVER.PING.CONNZ,
// $SYS.REQ.ACCOUNT.PING.STATZ) and whose KICK closes a connection.

// sysWait is how long a request to every server collects answers.
const sysWait = 500 * time.Millisecond

// watches reports whether Bulkhead can watch and close tenants'
// connections: on the embedded server, or with a system user.
func (s *Server) watches() bool { return s.ns != nil || s.sys != nil }

// openConns is the set of open connections.
func (s *Server) openConns(ctx context.Context, known int) (map[connKey]bool, error) {
	open := map[connKey]bool{}
	if s.ns != nil {
		cz, err := s.ns.Connz(&server.ConnzOptions{Limit: s.ns.NumClients() + known + 1024, State: server.ConnOpen})
		if err != nil {
			return nil, err
		}
		for _, ci := range cz.Conns {
			open[connKey{server: s.ns.ID(), cid: ci.Cid}] = true
		}
		return open, nil
	}
	req, _ := json.Marshal(server.ConnzEventOptions{ConnzOptions: server.ConnzOptions{Limit: known + 100_000, State: server.ConnOpen}})
	err := s.askAll(ctx, "$SYS.REQ.SERVER.PING.CONNZ", req, func(b []byte) {
		var r server.ServerAPIConnzResponse
		if json.Unmarshal(b, &r) != nil || r.Server == nil || r.Data == nil {
			return
		}
		for _, ci := range r.Data.Conns {
			open[connKey{server: r.Server.ID, cid: ci.Cid}] = true
		}
	})
	return open, err
}

// closeConn closes one connection.
func (s *Server) closeConn(ctx context.Context, key connKey) error {
	if s.ns != nil {
		return s.ns.DisconnectClientByID(key.cid)
	}
	if s.sys == nil {
		return errors.New("events: no system user")
	}
	req, _ := json.Marshal(server.KickClientReq{CID: key.cid})
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m, err := s.sys.RequestWithContext(rctx, fmt.Sprintf("$SYS.REQ.SERVER.%s.KICK", key.server), req)
	if err != nil {
		return err
	}
	var r server.ServerAPIResponse
	if json.Unmarshal(m.Data, &r) == nil && r.Error != nil {
		return errors.New(r.Error.Description)
	}
	return nil
}

// accountsReceived is how many messages each of accounts received from
// clients, on every server.
func (s *Server) accountsReceived(ctx context.Context, accounts map[string]string) (map[string]uint64, error) {
	names := make([]string, 0, len(accounts))
	for a := range accounts {
		names = append(names, a)
	}
	out := map[string]uint64{}
	if s.ns != nil {
		st, err := s.ns.AccountStatz(&server.AccountStatzOptions{Accounts: names})
		if err != nil {
			return nil, err
		}
		for _, a := range st.Accounts {
			out[a.Account] += uint64(a.Received.Msgs)
		}
		return out, nil
	}
	req, _ := json.Marshal(server.AccountStatzEventOptions{AccountStatzOptions: server.AccountStatzOptions{Accounts: names}})
	err := s.askAll(ctx, "$SYS.REQ.ACCOUNT.PING.STATZ", req, func(b []byte) {
		var r struct {
			Data *server.AccountStatz `json:"data"`
		}
		if json.Unmarshal(b, &r) != nil || r.Data == nil {
			return
		}
		for _, a := range r.Data.Accounts {
			if _, ok := accounts[a.Account]; ok {
				out[a.Account] += uint64(a.Received.Msgs)
			}
		}
	})
	return out, err
}

// askAll sends a request every server answers and hands each answer that
// comes within sysWait to each.
func (s *Server) askAll(ctx context.Context, subject string, req []byte, each func([]byte)) error {
	if s.sys == nil {
		return errors.New("events: no system user")
	}
	inbox := s.sys.NewRespInbox()
	answers := make(chan *nats.Msg, 64)
	sub, err := s.sys.ChanSubscribe(inbox, answers)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := s.sys.PublishRequest(subject, inbox, req); err != nil {
		return err
	}
	t := time.NewTimer(sysWait)
	defer t.Stop()
	for {
		select {
		case m := <-answers:
			each(m.Data)
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
