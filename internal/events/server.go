// Package events gives tenants event streams on NATS: an embedded NATS
// server (github.com/nats-io/nats-server, not a home-made broker) whose
// clients connect with a Bulkhead token and nothing else.
//
// Bulkhead is the server's auth callout service (NATS ≥ 2.10): a client's
// CONNECT carries its Bulkhead token (the NATS "auth token" field); the
// server hands it to Bulkhead, which verifies it as the API does (a
// tenant's active, unrevoked token, its client still registered) and
// answers with a NATS user for that connection alone: in the account
// TENANTS, allowed to publish and subscribe under t.<tenant>.> (as the
// token's scopes events:publish and events:subscribe allow) and to
// receive replies under _INBOX_<tenant>.> only, expiring with the token.
// A tenant therefore reaches its own subjects only, holds no NATS
// credential of its own, and none that outlives its token. Replies use a
// per-tenant inbox prefix (nats.CustomInboxPrefix("_INBOX_<tenant>")):
// the default _INBOX. is shared by everyone in the account.
//
// What this slice does not do yet (see issue 17): JetStream streams per
// isolation model with per-tier limits, FIFO groups and de-duplication,
// the HTTP endpoints, sdk/events, the outbox of Bulkhead's own events,
// and an external cluster (--nats-url).
package events

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// The token scopes that allow a connection to publish and to subscribe.
const (
	ScopePublish   = "events:publish"
	ScopeSubscribe = "events:subscribe"
)

// The server's accounts: the auth service's, the tenants', the system's.
const (
	authAccount    = "AUTH"
	tenantsAccount = "TENANTS"
	systemAccount  = "SYS"
	authUser       = "bulkhead-auth"
	streamsUser    = "bulkhead-streams" // Bulkhead's own user in TENANTS: it makes the tenants' streams
)

// Each tenant's stream, made at its first connection: the limits its
// tier names, or these. A tenant at one is refused, its neighbours are not
// touched (each stream has its own).
const (
	streamMaxBytes     = 64 << 20
	streamMaxMsgs      = 1_000_000
	streamMaxConsumers = 32
	streamMaxMsgSize   = 1 << 20
	dedupWindow        = 2 * time.Minute
)

// FIFO per message group (SQS FIFO's semantics): a message published to
// t.<tenant>.fifo.<group> is kept as t.<tenant>.p.<n>.<group>, n the
// group's partition (a hash of the group, FIFOPartitions of them; an
// account-wide subject mapping, whose first wildcard is the tenant the
// publisher's permission already pinned). A consumer per partition,
// filtered on t.<tenant>.p.<n>.* with MaxAckPending 1, gets each group's
// messages in order, one in flight, while other partitions' groups go
// on in parallel. De-duplication: a Nats-Msg-Id seen within the stream's
// window is dropped.
const FIFOPartitions = 8

// fifoMapping is the account's subject mapping for FIFO groups.
var fifoMapping = [2]string{"t.*.fifo.*", "t.{{wildcard(1)}}.p.{{partition(" + strconv.Itoa(FIFOPartitions) + ",2)}}.{{wildcard(2)}}"}

// StreamName is tenant tid's stream: a stream per tenant, even in pool
// (see streamPermissions for why).
func StreamName(tid string) string { return "T_" + tid }

// calloutSubject is where the server asks the auth service.
const calloutSubject = "$SYS.REQ.USER.AUTH"

// Config configures a Server.
type Config struct {
	// Listen is the client listener, host:port (":0" picks a port).
	Listen string
	// Tokens verifies a Bulkhead token (the API's tenant token verifier).
	Tokens authn.Verifier
	// StoreDir holds JetStream's files (the data directory's nats/).
	StoreDir string
	// Tiers give each tenant's stream its limits, by the tier of its token.
	Tiers  tenants.Tiers
	Logger *slog.Logger
	// Operators, if set, verifies operator tokens (the admin token store):
	// a connection with one reads the operator's stream (operator.go).
	Operators authn.Verifier
}

// Server is the embedded NATS server and its auth callout service.
type Server struct {
	cfg         Config
	ns          *server.Server
	issuer      nkeys.KeyPair // signs the users the callout issues
	authPW      string
	auth        *nats.Conn // the auth service's connection
	streamsConn *nats.Conn // Bulkhead's own, in TENANTS
	streams     jetstream.JetStream
	made        sync.Map // tenant id and limits → struct{}: its stream has them
	closeOnce   sync.Once
}

// New configures the server; Start starts it.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Tokens == nil {
		return nil, errors.New("events: no token verifier")
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("events: --nats-listen %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("events: --nats-listen %q: bad port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("events: callout key: %w", err)
	}
	issuerPub, err := issuer.PublicKey()
	if err != nil {
		return nil, err
	}
	// The auth service's password lives in this process only: it
	// connects in-process, and a new one is made at each start.
	pw := make([]byte, 32)
	rand.Read(pw)
	s := &Server{cfg: cfg, issuer: issuer, authPW: base64.RawURLEncoding.EncodeToString(pw)}
	authAcc, tenantsAcc, sysAcc := server.NewAccount(authAccount), server.NewAccount(tenantsAccount), server.NewAccount(systemAccount)
	opts := &server.Options{
		ServerName: "bulkhead", Host: host, Port: port, NoSigs: true, NoLog: true,
		Accounts:      []*server.Account{authAcc, tenantsAcc, sysAcc},
		SystemAccount: systemAccount,
		Users: []*server.User{{Username: authUser, Password: s.authPW, Account: authAcc},
			{Username: streamsUser, Password: s.authPW, Account: tenantsAcc}},
		AuthCallout: &server.AuthCallout{Issuer: issuerPub, Account: authAccount, AuthUsers: []string{authUser, streamsUser}},
		JetStream:   true, StoreDir: cfg.StoreDir,
		// A connection must authenticate within this (the callout included).
		AuthTimeout: 5,
		MaxPayload:  1 << 20,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("events: nats server: %w", err)
	}
	s.ns = ns
	return s, nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Start starts the server and, before any client can be answered, its
// auth service: a client that connected first would wait for a callout
// nobody hears. Run, or Close, stops them.
func (s *Server) Start(ctx context.Context) error {
	go s.ns.Start()
	if !s.ns.ReadyForConnections(10 * time.Second) {
		s.Close()
		return errors.New("events: the NATS server did not start")
	}
	acc, err := s.ns.LookupAccount(tenantsAccount)
	if err == nil {
		err = acc.EnableJetStream(map[string]server.JetStreamAccountLimits{"": {MaxMemory: -1, MaxStore: -1, MaxStreams: -1, MaxConsumers: -1}}, nil)
	}
	if err == nil {
		err = acc.AddMapping(fifoMapping[0], fifoMapping[1])
	}
	if err != nil {
		s.Close()
		return fmt.Errorf("events: JetStream for the tenants' account: %w", err)
	}
	sc, err := nats.Connect("", nats.InProcessServer(s.ns), nats.UserInfo(streamsUser, s.authPW), nats.Name("bulkhead streams"))
	if err == nil {
		s.streamsConn = sc
		s.streams, err = jetstream.New(sc)
	}
	if err == nil {
		err = s.ensureOperatorStream(ctx)
	}
	if err != nil {
		s.Close()
		return fmt.Errorf("events: connect the streams service: %w", err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(s.ns), nats.UserInfo(authUser, s.authPW), nats.Name("bulkhead auth callout"))
	if err != nil {
		s.Close()
		return fmt.Errorf("events: connect the auth service: %w", err)
	}
	s.auth = nc
	if _, err := nc.Subscribe(calloutSubject, func(m *nats.Msg) { s.answer(context.WithoutCancel(ctx), m) }); err != nil {
		s.Close()
		return fmt.Errorf("events: auth service: %w", err)
	}
	if err := nc.Flush(); err != nil {
		s.Close()
		return fmt.Errorf("events: auth service: %w", err)
	}
	s.cfg.Logger.InfoContext(ctx, "events: NATS listening", "url", s.ClientURL())
	return nil
}

// Run serves until ctx ends, then stops the server (Close).
func (s *Server) Run(ctx context.Context) error {
	<-ctx.Done()
	s.Close()
	return nil
}

// Close stops taking connections and shuts the server down, once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		if s.auth != nil {
			s.auth.Close()
		}
		if s.streamsConn != nil {
			s.streamsConn.Close()
		}
	})
}

// answer answers one authorization request: a user for the connection,
// or an error that refuses it. The reason a refusal gives the client is
// always the same; the log keeps the real one, without the token.
func (s *Server) answer(ctx context.Context, m *nats.Msg) {
	req, err := jwt.DecodeAuthorizationRequestClaims(string(m.Data))
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "events: unreadable authorization request", "err", err)
		return // the server times the connection out
	}
	res := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	res.Audience = req.Server.ID
	userJWT, why := s.authorize(ctx, req)
	if why != "" {
		s.cfg.Logger.InfoContext(ctx, "events: connection refused", "reason", why, "client_ip", req.ClientInformation.Host)
		res.Error = "not authorized"
	} else {
		res.Jwt = userJWT
	}
	out, err := res.Encode(s.issuer)
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "events: encode an authorization response", "err", err)
		return
	}
	_ = m.Respond([]byte(out))
}

// authorize checks the connection's Bulkhead token and makes its user,
// or says why not.
func (s *Server) authorize(ctx context.Context, req *jwt.AuthorizationRequestClaims) (string, string) {
	token := req.ConnectOptions.Token
	if token == "" {
		return "", "no token"
	}
	if user, ok := s.operatorUser(ctx, req, token); ok {
		return user, ""
	}
	vctx, err := s.cfg.Tokens.Verify(ctx, token)
	if err != nil {
		return "", "token refused"
	}
	tc, ok := tenant.FromContext(vctx)
	if !ok || tc.TenantID == "" {
		return "", "not a tenant's token"
	}
	pub, sub := tc.HasScope(ScopePublish), tc.HasScope(ScopeSubscribe)
	if !pub && !sub {
		return "", "the token has neither " + ScopePublish + " nor " + ScopeSubscribe
	}
	exp, err := expiry(token)
	if err != nil {
		return "", "token without expiry"
	}
	tid := string(tc.TenantID)
	if err := s.ensureStream(ctx, tid, s.cfg.Tiers[tc.Tier]); err != nil {
		s.cfg.Logger.ErrorContext(ctx, "events: make a tenant's stream", "tenant_id", tid, "err", err)
		return "", "stream unavailable"
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = tc.Principal
	uc.Audience = tenantsAccount
	uc.Expires = exp.Unix()
	// An empty allow list allows everything: each list always names at
	// least the tenant's inbox (requests and their replies stay inside
	// the tenant).
	own, inbox := "t."+tid+".>", "_INBOX_"+tid+".>"
	uc.Permissions.Pub.Allow.Add(inbox)
	uc.Permissions.Sub.Allow.Add(inbox)
	if pub {
		uc.Permissions.Pub.Allow.Add(own)
	}
	if sub {
		uc.Permissions.Sub.Allow.Add(own)
	}
	uc.Permissions.Pub.Allow.Add(streamPermissions(tid)...)
	out, err := uc.Encode(s.issuer)
	if err != nil {
		return "", "cannot issue the user"
	}
	return out, ""
}

// expiry reads a verified JWT's exp (the signature and expiry were
// checked by the verifier; this only reads the time).
func expiry(token string) (time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, err
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Exp == 0 {
		return time.Time{}, errors.New("no exp")
	}
	return time.Unix(c.Exp, 0), nil
}

// streamPermissions are the JetStream API subjects a tenant's user may
// publish to: those naming its own stream, for reading its info and
// messages and for consumers on it; not STREAM.CREATE, UPDATE, DELETE
// or PURGE (Bulkhead makes the stream, with its limits), not the
// account-wide ones (INFO, STREAM.LIST, STREAM.NAMES: they name other
// tenants' streams). Why a stream per tenant even in pool: in a stream
// shared by tenants, consumer names are single subject tokens, so no
// permission can keep one tenant off another's consumers, the legacy
// CONSUMER.CREATE takes any filter subject, and STREAM.INFO counts
// every tenant's subjects.
func streamPermissions(tid string) []string {
	st := StreamName(tid)
	return []string{
		"$JS.API.STREAM.INFO." + st,
		"$JS.API.STREAM.MSG.GET." + st,
		"$JS.API.DIRECT.GET." + st, "$JS.API.DIRECT.GET." + st + ".>",
		"$JS.API.CONSUMER.*." + st,          // legacy create, LIST, NAMES
		"$JS.API.CONSUMER.*." + st + ".>",   // CREATE (with filter), INFO, DELETE
		"$JS.API.CONSUMER.*.*." + st + ".>", // MSG.NEXT, DURABLE.CREATE
		"$JS.ACK." + st + ".>",
	}
}

// ensureStream makes tenant tid's stream once per process (idempotent:
// CreateOrUpdateStream leaves a stream that exists as it is configured).
// The limits follow the tier: a tenant moved to another tier gets the
// new tier's limits at its next connection.
func (s *Server) ensureStream(ctx context.Context, tid string, tier tenants.Tier) error {
	cfg := jetstream.StreamConfig{
		Name: StreamName(tid), Subjects: []string{"t." + tid + ".>"}, Storage: jetstream.FileStorage,
		MaxBytes: orDefault(tier.StreamMaxBytes, streamMaxBytes), MaxMsgs: orDefault(tier.StreamMaxMsgs, streamMaxMsgs),
		MaxConsumers: int(orDefault(int64(tier.StreamMaxConsumers), streamMaxConsumers)), MaxMsgSize: streamMaxMsgSize,
		Duplicates: dedupWindow, Discard: jetstream.DiscardNew,
	}
	key := fmt.Sprintf("%s/%d/%d/%d", tid, cfg.MaxBytes, cfg.MaxMsgs, cfg.MaxConsumers)
	if _, ok := s.made.Load(key); ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.streams.CreateOrUpdateStream(ctx, cfg); err != nil {
		return err
	}
	s.made.Store(key, struct{}{})
	return nil
}

func orDefault(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}
