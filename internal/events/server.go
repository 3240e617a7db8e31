// Package events gives tenants event streams on NATS: an embedded NATS
// server (github.com/nats-io/nats-server, not a home-made broker), or an
// external server or cluster that the nodes join (--nats-url, configured
// by Credentials.ServerConfig), whose clients connect with a Bulkhead
// token and nothing else.
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
// Each tenant has a JetStream stream of its own with its tier's limits
// (ensureStream), FIFO groups by the stream's subject transform, and an
// HTTP side (streams.go); the operator reads Bulkhead's own events
// (operator.go, fed by package outbox). Every tenant is in a NATS
// account of its own (place.go, slots.go).
package events

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"golang.org/x/sync/singleflight"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/lru"
	"github.com/bulkhead-dev/bulkhead/internal/partners"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	sdkevents "github.com/bulkhead-dev/bulkhead/sdk/events"
)

// The token scopes that allow a connection to publish and to subscribe.
const (
	ScopePublish   = sdkevents.ScopePublish
	ScopeSubscribe = sdkevents.ScopeSubscribe
)

// The server's accounts: the auth service's, the tenants', the system's.
const (
	authAccount    = "AUTH"
	tenantsAccount = "TENANTS"
	systemAccount  = "SYS"
	authUser       = "bulkhead-auth"
	streamsUser    = "bulkhead-streams" // Bulkhead's own user in TENANTS: it makes the tenants' streams
	sysUser        = "bulkhead-sys"     // Bulkhead's user in an external server's system account
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
// group's partition (a hash of the group, FIFOPartitions of them; the
// tenant's stream's own subject transform, so an external server needs
// no account mapping and other publishes pay for none). A consumer per
// partition, filtered on t.<tenant>.p.<n>.* with MaxAckPending 1, gets
// each group's messages in order, one in flight, while other partitions'
// groups go on in parallel. De-duplication: a Nats-Msg-Id seen within
// the stream's window is dropped.
const FIFOPartitions = sdkevents.FIFOPartitions

// fifoTransform is tenant tid's stream's subject transform for FIFO groups.
func fifoTransform(tid string) *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{Source: "t." + tid + ".fifo.*",
		Destination: "t." + tid + ".p.{{partition(" + strconv.Itoa(FIFOPartitions) + ",1)}}.{{wildcard(1)}}"}
}

// StreamName is tenant tid's stream: a stream per tenant, even in pool
// (see streamPermissions for why).
func StreamName(tid string) string { return sdkevents.StreamName(tid) }

// calloutSubject is where the server asks the auth service.
const calloutSubject = "$SYS.REQ.USER.AUTH"

// Config configures a Server.
type Config struct {
	// Listen is the embedded server's client listener, host:port (":0"
	// picks a port).
	Listen string
	// URL, instead of Listen, is an external NATS server or cluster
	// (comma-separated URLs, without credentials), configured with
	// Credentials.ServerConfig; Bulkhead joins it with Credentials.
	URL         string
	Credentials *Credentials
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
	// RecheckInterval is how often the embedded server's tenant
	// connections have their token verified again (live.go); default
	// DefaultRecheckInterval.
	RecheckInterval time.Duration
}

// Server is the auth callout service of a NATS server, embedded (the
// server runs in this process) or external (Bulkhead joins it as two
// users), and the maker of the tenants' streams there.
type Server struct {
	cfg         Config
	ns          *server.Server // nil with an external server
	creds       *Credentials
	issuer      nkeys.KeyPair // signs the users the callout issues
	xkey        nkeys.KeyPair // the server encrypts callout requests to it
	auth        *nats.Conn    // the auth service's connection
	authClosed  chan struct{}
	streamsConn *nats.Conn // Bulkhead's own, in TENANTS
	streams     jetstream.JetStream
	made        sync.Map // tenant id and limits → struct{}: its stream has them
	// making shares one CreateOrUpdateStream among the concurrent first
	// requests of a tenant: a second update of a stream while the first
	// request already makes consumers on it races inside nats-server
	// (fileStore.UpdateConfig against ConsumerStore, seen under -race).
	making    singleflight.Group
	live      liveConns
	accounts  *lru.Cache[string, *place] // tenant id → Bulkhead's connection to its account (embedded)
	sys       *nats.Conn                 // Bulkhead's user in an external server's system account (sysops.go)
	callout   calloutLimits
	rates     rates
	slots     jetstream.KeyValue // an external server's tenant accounts (slots.go)
	slotCache sync.Map           // tenant id → its account there
	accountMu sync.Mutex         // one registration of an account at a time
	closeOnce sync.Once
}

// New configures the server; Start starts it.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Tokens == nil {
		return nil, errors.New("events: no token verifier")
	}
	s := &Server{cfg: cfg, authClosed: make(chan struct{}), accounts: newAccountConns(), callout: newCalloutLimits()}
	var err error
	switch {
	case cfg.URL != "" && cfg.Listen != "":
		return nil, errors.New("events: an embedded NATS server (--nats-listen) or an external one (--nats-url), not both")
	case cfg.URL != "":
		if cfg.Credentials == nil {
			return nil, errors.New("events: an external NATS server needs Bulkhead's credentials there (--nats-credentials)")
		}
		if err := checkURLs(cfg.URL); err != nil {
			return nil, err
		}
		if err := cfg.Credentials.check(); err != nil {
			return nil, fmt.Errorf("events: NATS credentials: %w", err)
		}
		s.creds = cfg.Credentials
	default:
		// The embedded server's users and keys live in this process
		// only: fresh ones at each start.
		if s.creds, err = NewCredentials(); err != nil {
			return nil, err
		}
	}
	if s.issuer, err = s.creds.issuer(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if s.xkey, err = s.creds.xkey(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if cfg.URL == "" {
		if s.ns, err = s.newEmbedded(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// newEmbedded configures the embedded server as Credentials.ServerConfig
// configures an external one.
func (s *Server) newEmbedded() (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("events: --nats-listen %q: %w", s.cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("events: --nats-listen %q: bad port", s.cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	issuerPub, err := s.issuer.PublicKey()
	if err != nil {
		return nil, err
	}
	xkeyPub, err := s.xkey.PublicKey()
	if err != nil {
		return nil, err
	}
	c := s.creds
	authAcc, tenantsAcc, sysAcc := server.NewAccount(authAccount), server.NewAccount(tenantsAccount), server.NewAccount(systemAccount)
	opts := &server.Options{
		ServerName: "bulkhead", Host: host, Port: port, NoSigs: true, NoLog: true,
		Accounts:      []*server.Account{authAcc, tenantsAcc, sysAcc},
		SystemAccount: systemAccount,
		Users: []*server.User{{Username: c.AuthUser, Password: c.AuthPassword, Account: authAcc},
			{Username: c.StreamsUser, Password: c.StreamsPassword, Account: tenantsAcc}},
		AuthCallout: &server.AuthCallout{Issuer: issuerPub, XKey: xkeyPub, Account: authAccount, AuthUsers: []string{c.AuthUser, c.StreamsUser}},
		JetStream:   true, StoreDir: s.cfg.StoreDir,
		// A connection must authenticate within this (the callout included).
		AuthTimeout: 5,
		MaxPayload:  1 << 20,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("events: nats server: %w", err)
	}
	return ns, nil
}

// checkURLs refuses a URL that carries a user or password (they belong
// in the credentials file: a flag's value shows in ps). The error does not
// quote the URL, which would quote the password.
func checkURLs(urls string) error {
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil {
			return errors.New("events: --nats-url: not a URL (nats://host:port, comma-separated)")
		}
		if p.User != nil {
			return errors.New("events: --nats-url carries a user or password: put Bulkhead's credentials in --nats-credentials")
		}
	}
	return nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string {
	if s.ns == nil {
		return s.cfg.URL
	}
	return s.ns.ClientURL()
}

// Start starts the embedded server if there is one and, before any
// client can be answered, the auth service: a client that connected
// first would wait for a callout nobody hears. Run, or Close, stops them.
func (s *Server) Start(ctx context.Context) error {
	if s.ns != nil {
		if err := s.startEmbedded(); err != nil {
			s.Close()
			return err
		}
	}
	sc, err := s.connect(ctx, "bulkhead streams", s.creds.StreamsUser, s.creds.StreamsPassword)
	if err == nil {
		s.streamsConn = sc
		s.streams, err = jetstream.New(sc)
	}
	if err == nil {
		err = s.ensureOperatorStream(ctx)
	}
	if err == nil {
		err = s.adoptSharedStreams(ctx)
	}
	if err != nil {
		s.Close()
		return fmt.Errorf("events: connect the streams service: %w", err)
	}
	nc, err := s.connect(ctx, "bulkhead auth callout", s.creds.AuthUser, s.creds.AuthPassword, nats.ClosedHandler(func(*nats.Conn) { close(s.authClosed) }))
	if err != nil {
		s.Close()
		return fmt.Errorf("events: connect the auth service: %w", err)
	}
	s.auth = nc
	if s.ns == nil {
		if err := s.openSlots(ctx); err != nil {
			s.Close()
			return err
		}
		if s.creds.SysUser != "" {
			if s.sys, err = s.connect(ctx, "bulkhead system", s.creds.SysUser, s.creds.SysPassword); err != nil {
				s.Close()
				return fmt.Errorf("events: connect Bulkhead's system user: %w", err)
			}
		} else {
			s.cfg.Logger.WarnContext(ctx, "events: the NATS credentials have no system user (a nats-config of an earlier version): connections are not rechecked, rates not enforced; run bulkhead nats-config again")
		}
	}
	// A queue group: of several nodes on one server or cluster, one
	// answers each request.
	if _, err := nc.QueueSubscribe(calloutSubject, calloutQueue, func(m *nats.Msg) { s.dispatch(context.WithoutCancel(ctx), m) }); err != nil {
		s.Close()
		return fmt.Errorf("events: auth service: %w", err)
	}
	if err := nc.Flush(); err != nil {
		s.Close()
		return fmt.Errorf("events: auth service: %w", err)
	}
	if s.ns != nil {
		s.cfg.Logger.InfoContext(ctx, "events: NATS listening", "url", s.ClientURL())
	} else {
		s.cfg.Logger.InfoContext(ctx, "events: joined the NATS server", "url", nc.ConnectedUrlRedacted())
	}
	return nil
}

// calloutQueue is the auth services' queue group.
const calloutQueue = "bulkhead-auth"

// startEmbedded starts the embedded server and gives the tenants' account
// what an external server's configuration gives it.
func (s *Server) startEmbedded() error {
	go s.ns.Start()
	if !s.ns.ReadyForConnections(10 * time.Second) {
		return errors.New("events: the NATS server did not start")
	}
	acc, err := s.ns.LookupAccount(tenantsAccount)
	if err == nil {
		err = acc.EnableJetStream(map[string]server.JetStreamAccountLimits{"": {MaxMemory: -1, MaxStore: -1, MaxStreams: -1, MaxConsumers: -1}}, nil)
	}
	if err != nil {
		return fmt.Errorf("events: JetStream for the tenants' account: %w", err)
	}
	return nil
}

// connect connects one of Bulkhead's users: in-process to the embedded
// server, or to the external one, reconnecting for as long as it takes
// (what was lost is logged, never a password).
func (s *Server) connect(ctx context.Context, name, user, password string, more ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.UserInfo(user, password), nats.Name(name)}, more...)
	if s.ns != nil {
		return nats.Connect("", append(opts, nats.InProcessServer(s.ns))...)
	}
	ctx = context.WithoutCancel(ctx)
	log := s.cfg.Logger.With("conn", name)
	opts = append(opts, nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if !nc.IsClosed() {
				log.WarnContext(ctx, "events: NATS connection lost; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			// The server may have lost streams (a new cluster): make them
			// again at each tenant's next connection.
			s.made.Clear()
			log.InfoContext(ctx, "events: NATS connection back", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.WarnContext(ctx, "events: NATS error", "err", err)
		}))
	return nats.Connect(s.cfg.URL, opts...)
}

// Run serves until ctx ends, then stops the server (Close).
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	every := s.cfg.RecheckInterval
	if every <= 0 {
		every = DefaultRecheckInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	r := time.NewTicker(rateEvery)
	defer r.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.recheck(ctx)
		case <-r.C:
			s.chargeRates(ctx)
		}
	}
}

// Close stops answering and, if it is embedded, shuts the server down,
// once. On an external server the auth service drains first: the
// requests it holds are answered, new ones go to the other nodes.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.ns != nil {
			s.ns.Shutdown()
			s.ns.WaitForShutdown()
		}
		if s.auth != nil {
			if s.ns != nil || s.auth.Drain() != nil {
				s.auth.Close()
			}
			select {
			case <-s.authClosed:
			case <-time.After(10 * time.Second):
				s.auth.Close()
			}
		}
		if s.sys != nil {
			s.sys.Close()
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
	// The server encrypts the request (it holds the client's token) to
	// our curve key, and we encrypt the answer to the server's.
	serverXKey := m.Header.Get(server.AuthRequestXKeyHeader)
	data := m.Data
	if serverXKey != "" {
		var err error
		if data, err = s.xkey.Open(m.Data, serverXKey); err != nil {
			s.cfg.Logger.WarnContext(ctx, "events: undecryptable authorization request", "err", err)
			return // the server times the connection out
		}
	}
	req, err := jwt.DecodeAuthorizationRequestClaims(string(data))
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
		msg := "events: connection authorized"
		if strings.HasPrefix(req.ConnectOptions.Username, tenantUserPrefix) {
			msg = "events: Bulkhead's own connection to a tenant's account authorized"
		}
		s.cfg.Logger.DebugContext(ctx, msg, "client_ip", req.ClientInformation.Host)
		res.Jwt = userJWT
	}
	out, err := res.Encode(s.issuer)
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "events: encode an authorization response", "err", err)
		return
	}
	answer := []byte(out)
	if serverXKey != "" {
		if answer, err = s.xkey.Seal(answer, serverXKey); err != nil {
			s.cfg.Logger.ErrorContext(ctx, "events: encrypt an authorization response", "err", err)
			return
		}
	}
	_ = m.Respond(answer)
}

// authorize checks the connection's Bulkhead token and makes its user,
// or says why not.
func (s *Server) authorize(ctx context.Context, req *jwt.AuthorizationRequestClaims) (string, string) {
	if user, why, ok := s.tenantUser(ctx, req); ok {
		return user, why // Bulkhead's own: not throttled, nor waiting for a worker
	}
	host := req.ClientInformation.Host
	if !s.callout.refusals.Ready(host, time.Now()) {
		return "", "too many refused connections from this address"
	}
	release, ok := s.callout.work(ctx)
	if !ok {
		return "", "the auth service is busy"
	}
	defer release()
	user, why := s.authorizeToken(ctx, req)
	if why != "" {
		s.callout.refusals.Take(host, time.Now())
	}
	return user, why
}

// authorizeToken checks the connection's token and makes its user.
func (s *Server) authorizeToken(ctx context.Context, req *jwt.AuthorizationRequestClaims) (string, string) {
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
	if !partnerInNetworks(tc, req.ClientInformation.Host) {
		// A partner's session keeps to its trust's networks here too (the
		// connection's address, as the NATS server saw it), and the live
		// connection to the networks of the moment (recheck).
		return "", "the partner's session is outside its trust's networks"
	}
	pub, sub := tc.HasScope(ScopePublish), tc.HasScope(ScopeSubscribe)
	if !pub && !sub {
		return "", "the token has neither " + ScopePublish + " nor " + ScopeSubscribe
	}
	exp, err := expiry(token)
	if err != nil {
		return "", "token without expiry"
	}
	if s.rates.throttled(string(tc.TenantID), time.Now()) {
		return "", "the tenant is over its tier's message rate"
	}
	tid := string(tc.TenantID)
	// The user goes to the account the tenant's stream is in.
	account, tooMany := "", false
	if err := s.using(ctx, tid, s.cfg.Tiers[tc.Tier], func(p *place) error {
		account = p.account
		if s.watches() {
			key := connKey{server: req.Server.ID, cid: req.ClientInformation.ID}
			tooMany = !s.live.add(key, liveConn{tid: tid, tier: tc.Tier, token: token, host: req.ClientInformation.Host})
		}
		return nil
	}); err != nil {
		s.cfg.Logger.ErrorContext(ctx, "events: make a tenant's stream", "tenant_id", tid, "err", err)
		return "", "stream unavailable"
	}
	if tooMany {
		return "", "the tenant has too many connections"
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = tc.Principal
	uc.Audience = account
	uc.Expires = exp.Unix()
	pubAllow, subAllow := Permissions(tid, pub, sub)
	uc.Permissions.Pub.Allow.Add(pubAllow...)
	uc.Permissions.Sub.Allow.Add(subAllow...)
	out, err := uc.Encode(s.issuer)
	if err != nil {
		return "", "cannot issue the user"
	}
	return out, ""
}

// partnerInNetworks reports whether a connection from host may go on with
// tc's token: any connection for a token that is not a partner's session,
// one from the trust's networks for a partner's.
func partnerInNetworks(tc tenant.Context, host string) bool {
	if tc.Partner == nil || len(tc.Partner.Networks) == 0 {
		return true
	}
	ip, _ := netip.ParseAddr(host)
	return partners.InNetworks(tc.Partner.Networks, ip)
}

// Permissions are the subjects a connection of tenant tid may publish to
// and subscribe to: its inbox always (an empty allow list would allow
// everything; requests and their replies stay inside the tenant), its
// own subjects as the token's scopes allow, its stream's JetStream API.
func Permissions(tid string, pub, sub bool) (pubAllow, subAllow []string) {
	own, inbox := "t."+tid+".>", sdkevents.InboxPrefix(tid)+".>"
	pubAllow, subAllow = []string{inbox}, []string{inbox}
	if pub {
		pubAllow = append(pubAllow, own)
	}
	if sub {
		subAllow = append(subAllow, own)
	}
	return append(pubAllow, streamPermissions(tid)...), subAllow
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
// publish to, in its own account: those naming its stream, for reading
// its info and messages and for consumers on it; not STREAM.CREATE,
// UPDATE, DELETE or PURGE (Bulkhead makes the stream, with its tier's
// limits), nor the account-wide ones.
func streamPermissions(tid string) []string {
	st := StreamName(tid)
	return []string{
		"$JS.API.STREAM.INFO." + st,
		"$JS.API.STREAM.MSG.GET." + st,
		"$JS.API.DIRECT.GET." + st, "$JS.API.DIRECT.GET." + st + ".>",
		"$JS.API.CONSUMER.*." + st,        // legacy create, LIST, NAMES
		"$JS.API.CONSUMER.*." + st + ".>", // CREATE (with filter), INFO, DELETE
		// Not $JS.API.CONSUMER.*.*.<stream>.>: that also matches
		// CONSUMER.CREATE.<another stream>.<stream>.<filter>, a consumer
		// named after this stream on another tenant's.
		"$JS.API.CONSUMER.MSG.NEXT." + st + ".*",
		"$JS.API.CONSUMER.DURABLE.CREATE." + st + ".*",
		"$JS.ACK." + st + ".>",
	}
}

// ensureStream makes tenant tid's stream once per process (idempotent:
// CreateOrUpdateStream leaves a stream that exists as it is configured).
// The limits follow the tier: a tenant moved to another tier gets the
// new tier's limits at its next connection.
func (s *Server) ensureStream(ctx context.Context, p *place, tid string, tier tenants.Tier) error {
	cfg := jetstream.StreamConfig{
		Name: StreamName(tid), Subjects: []string{"t." + tid + ".>"}, Storage: jetstream.FileStorage,
		MaxBytes: orDefault(tier.StreamMaxBytes, streamMaxBytes), MaxMsgs: orDefault(tier.StreamMaxMsgs, streamMaxMsgs),
		MaxConsumers: int(orDefault(int64(tier.StreamMaxConsumers), streamMaxConsumers)), MaxMsgSize: streamMaxMsgSize,
		Duplicates: dedupWindow, Discard: jetstream.DiscardNew, SubjectTransform: fifoTransform(tid),
	}
	key := fmt.Sprintf("%s/%s/%d/%d/%d", tid, p.account, cfg.MaxBytes, cfg.MaxMsgs, cfg.MaxConsumers)
	if _, ok := s.made.Load(key); ok {
		return nil
	}
	_, err, _ := s.making.Do(key, func() (any, error) {
		if _, ok := s.made.Load(key); ok {
			return nil, nil
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := p.js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return nil, err
		}
		s.made.Store(key, struct{}{})
		return nil, nil
	})
	return err
}

func orDefault(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}
