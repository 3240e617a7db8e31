// Package natstest runs a real nats-server process for the tests of
// Bulkhead against an external NATS server: the one of the module
// Bulkhead depends on (the system's may be older than auth callout, which
// needs 2.10), built once and cached by version, configured with the
// files bulkhead nats-config writes (events.WriteConfig).
package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/events"
)

const module = "github.com/nats-io/nats-server/v2"

// binary builds nats-server once per test binary (and once per version in
// the user's cache directory, across runs).
var binary = sync.OnceValues(func() (string, error) {
	version := moduleVersion()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "bulkhead-test", "nats-server-"+version)
	bin := filepath.Join(dir, "nats-server")
	if version != "" {
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	// Built beside its final name, then renamed: a concurrent test binary
	// sees either no file or a whole one.
	tmp, err := os.MkdirTemp(dir, "build")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	out, err := exec.Command("go", "build", "-o", filepath.Join(tmp, "nats-server"), module).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", module, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "nats-server"), bin); err != nil {
		return "", err
	}
	return bin, nil
})

// moduleVersion is the nats-server module's version this test binary was
// built with ("" if unknown: then the binary is built again).
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == module {
				if d.Replace != nil {
					return ""
				}
				return d.Version
			}
		}
	}
	return ""
}

// Server is a nats-server process.
type Server struct {
	t               testing.TB
	bin, dir, conf  string
	port            int
	cmd             *exec.Cmd
	done            chan struct{}
	log             *os.File
	CredentialsFile string // Bulkhead's credentials (serve --nats-credentials)
	Credentials     *events.Credentials
}

// Start starts a nats-server on a free loopback port with JetStream in a
// temporary directory and Bulkhead's configuration, and waits until it
// serves JetStream; the test's end kills it.
func Start(t testing.TB) *Server { return StartWith(t, events.DefaultTenantAccounts) }

// StartWith is Start with a configuration of tenantAccounts tenant accounts.
func StartWith(t testing.TB, tenantAccounts int) *Server {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	dir := t.TempDir()
	frag, creds, err := events.WriteConfig(filepath.Join(dir, "bulkhead"), tenantAccounts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := events.ReadCredentials(creds)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "nats.conf"), CredentialsFile: creds, Credentials: c}
	for attempt := 0; ; attempt++ {
		s.port = freePort(t)
		conf := fmt.Sprintf("listen: \"127.0.0.1:%d\"\nserver_name: natstest\njetstream { store_dir: %q }\ninclude %q\n",
			s.port, filepath.Join(dir, "jetstream"), "bulkhead/"+filepath.Base(frag)) // relative to nats.conf
		if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		err := s.start()
		if err == nil {
			break
		}
		if attempt == 2 { // the port may have been taken between freePort and the server's listen
			t.Fatalf("nats-server: %v\n%s", err, s.Log())
		}
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("nats-server's log:\n%s", s.Log())
		}
	})
	return s
}

// URL is the server's client URL.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// Kill kills the server with SIGKILL (no shutdown of its own) and waits
// for it to exit.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
	s.log.Close()
}

// Restart starts the server again on the same port and files, after Kill.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("restart nats-server: %v\n%s", err, s.Log())
	}
}

// Log is the server's output so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "nats.log"))
	return string(b)
}

func (s *Server) start() error {
	log, err := os.OpenFile(filepath.Join(s.dir, "nats.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "-c", s.conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done, s.log = cmd, done, log
	if err := s.ready(); err != nil {
		s.Kill()
		return err
	}
	return nil
}

// ready waits until the streams user can reach JetStream.
func (s *Server) ready() error {
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-s.done:
			return errors.New("nats-server exited")
		default:
		}
		err := s.ping()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) ping() error {
	nc, err := nats.Connect(s.URL(), nats.UserInfo(s.Credentials.StreamsUser, s.Credentials.StreamsPassword), nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// freePort is a loopback port free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
