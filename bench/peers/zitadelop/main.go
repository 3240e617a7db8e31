// Command zitadelop is the token-issuance floor of bench/run: the
// zitadel/oidc example OpenID provider (example/server of the module, at
// the version Bulkhead uses), in memory, changed in the two ways that make
// its client-credentials tokens what Bulkhead issues: ES256 instead of the
// example's RS256 signing key, and JWT access tokens instead of the
// example service user's opaque ones. Nothing persists and nothing is
// audited: it is the library's own cost of a token.
//
// It listens on -listen (loopback), prints "ZITADELOP <issuer>" and serves
// until SIGINT or SIGTERM. The client is the example's service user: sid1
// with secret verysecret.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// es256Key is the provider's signing key and, as op.Key, its public half.
type es256Key struct {
	id  string
	key *ecdsa.PrivateKey
}

func (k *es256Key) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k *es256Key) Key() any                                    { return k.key }
func (k *es256Key) ID() string                                  { return k.id }

type es256Public struct{ *es256Key }

func (k es256Public) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k es256Public) Use() string                        { return "sig" }
func (k es256Public) Key() any                           { return &k.key.PublicKey }

// store is the example's in-memory storage with an ES256 key and JWT
// access tokens for client credentials.
type store struct {
	*storage.Storage
	key *es256Key
}

func (s *store) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }
func (s *store) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}
func (s *store) KeySet(context.Context) ([]op.Key, error) { return []op.Key{es256Public{s.key}}, nil }

func (s *store) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := s.Storage.ClientCredentials(ctx, id, secret)
	if err != nil {
		return nil, err
	}
	return jwtClient{c}, nil
}

// jwtClient is a client whose access tokens are JWTs.
type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	if err := run(*listen); err != nil {
		fmt.Fprintln(os.Stderr, "zitadelop:", err)
		os.Exit(1)
	}
}

func run(listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen must be a loopback address, got %q", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	issuer := fmt.Sprintf("http://%s/", ln.Addr())
	st := &store{Storage: storage.NewStorage(storage.NewUserStore(issuer)), key: &es256Key{id: "bench-es256", key: priv}}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	srv := &http.Server{Handler: exampleop.SetupServer(issuer, st, logger, false), ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("ZITADELOP %s\n", issuer)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
