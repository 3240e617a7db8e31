package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
	"github.com/bulkhead-dev/bulkhead/sdk/auth/authtest"
)

const audience = "orders-api"

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a test provider with a platform ES256 and EdDSA key and a
// validator of its tokens.
type env struct {
	t   testing.TB
	op  *authtest.Server
	clk *clock
	v   *auth.Validator
	es  *authtest.Key // platform ES256 key
	ed  *authtest.Key // platform EdDSA key
	log *runtest.Log
}

func newEnv(t testing.TB, mod ...func(*auth.Config)) *env {
	t.Helper()
	e := &env{t: t, op: authtest.NewServer(t), clk: &clock{t: time.Now().Truncate(time.Second)}, log: &runtest.Log{}}
	e.es = e.op.AddKey(e.op.Issuer(), authtest.ES256)
	e.ed = e.op.AddKey(e.op.Issuer(), authtest.EdDSA)
	e.v = e.validator(mod...)
	return e
}

func (e *env) validator(mod ...func(*auth.Config)) *auth.Validator {
	e.t.Helper()
	cfg := auth.Config{
		Issuer:     e.op.Issuer(),
		Audience:   audience,
		HTTPClient: e.op.Client(),
		Now:        e.clk.Now,
		Logger:     slog.New(slog.NewJSONHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&cfg)
	}
	v, err := auth.NewValidator(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// claims is a valid claim set of iss at the env's clock.
func (e *env) claims(iss, tenant string) map[string]any {
	return authtest.Claims(iss, audience, tenant, e.clk.Now())
}

// platform is a valid platform token of tenant signed with k.
func (e *env) platform(k *authtest.Key, tenant string) string {
	return k.Sign(e.claims(e.op.Issuer(), tenant))
}

func (e *env) validate(token string) (*auth.Claims, error) {
	return e.v.Validate(context.Background(), token)
}

var with = authtest.With

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64json(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b64(b)
}
