package events

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"
)

// Credentials let Bulkhead join an external NATS server (serve
// --nats-url): the passwords of its two users there, the auth callout
// service's (in the account AUTH) and its streams user's (in TENANTS,
// where it makes the tenants' streams), the seed of the account key it
// signs callout answers with (the server's auth_callout issuer names its
// public key), and the seed of the curve key that the server encrypts
// callout requests to (its auth_callout xkey): the requests carry the
// clients' tokens. They are read from a file only (ReadCredentials), never
// from a flag's value, which ps shows; NewCredentials and ServerConfig
// make the file and the server's configuration that go together (bulkhead
// nats-config).
type Credentials struct {
	AuthUser        string `json:"auth_user"`
	AuthPassword    string `json:"auth_password"`
	StreamsUser     string `json:"streams_user"`
	StreamsPassword string `json:"streams_password"`
	// IssuerSeed is an account nkey seed (SA…).
	IssuerSeed string `json:"issuer_seed"`
	// XKeySeed is a curve nkey seed (SX…).
	XKeySeed string `json:"xkey_seed"`
	// SysUser and SysPassword are Bulkhead's user in the system account:
	// it reads the servers' connections and message counts and closes
	// connections (rechecked tokens, message rates: sysops.go). Empty (a
	// file of an earlier version): neither is done there.
	SysUser     string `json:"sys_user,omitempty"`
	SysPassword string `json:"sys_password,omitempty"`
	// TenantAccounts is how many tenant accounts (S_0000 …) the server's
	// configuration declares: each tenant that connects gets one of its
	// own (slots.go). 0 (a file of an earlier version): none, and tenants
	// may not connect over NATS there.
	TenantAccounts int `json:"tenant_accounts"`
}

// DefaultTenantAccounts is how many tenant accounts nats-config declares
// unless told.
const DefaultTenantAccounts = 256

// MaxTenantAccounts bounds --tenant-accounts (a line of configuration each).
const MaxTenantAccounts = 100_000

// NewCredentials makes fresh credentials: random passwords and new keys.
func NewCredentials() (*Credentials, error) {
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("events: issuer key: %w", err)
	}
	xkey, err := nkeys.CreateCurveKeys()
	if err != nil {
		return nil, fmt.Errorf("events: curve key: %w", err)
	}
	iseed, err := issuer.Seed()
	if err != nil {
		return nil, err
	}
	xseed, err := xkey.Seed()
	if err != nil {
		return nil, err
	}
	return &Credentials{AuthUser: authUser, AuthPassword: rand.Text(),
		StreamsUser: streamsUser, StreamsPassword: rand.Text(),
		IssuerSeed: string(iseed), XKeySeed: string(xseed), TenantAccounts: DefaultTenantAccounts,
		SysUser: sysUser, SysPassword: rand.Text()}, nil
}

// ReadCredentials reads the credentials file at path. A file that others
// than its owner may read or write is refused, as ssh refuses such a key:
// the passwords and seeds in it are Bulkhead's whole standing on the NATS
// server. Errors name the file and the problem, never its contents.
func ReadCredentials(path string) (*Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("events: NATS credentials: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("events: NATS credentials: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("events: NATS credentials %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("events: NATS credentials %s: readable or writable by others (mode %04o); chmod 600 it", path, perm)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("events: NATS credentials: %w", err)
	}
	var c Credentials
	dec := json.NewDecoder(&b)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		// A syntax error quotes a character of the file: say where, not what.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("events: NATS credentials %s: not JSON (at byte %d)", path, se.Offset)
		}
		return nil, fmt.Errorf("events: NATS credentials %s: not the expected JSON object (bulkhead nats-config writes one)", path)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("events: NATS credentials %s: %w", path, err)
	}
	return &c, nil
}

// check says what is missing or malformed, never a value.
func (c *Credentials) check() error {
	switch {
	case c.AuthUser == "" || c.AuthPassword == "":
		return errors.New("auth_user and auth_password are required")
	case c.StreamsUser == "" || c.StreamsPassword == "":
		return errors.New("streams_user and streams_password are required")
	case c.AuthUser == c.StreamsUser:
		return errors.New("auth_user and streams_user must differ")
	case c.SysUser != "" && (c.SysPassword == "" || c.SysUser == c.AuthUser || c.SysUser == c.StreamsUser):
		return errors.New("sys_user needs a sys_password and a name of its own")
	case c.TenantAccounts < 0 || c.TenantAccounts > MaxTenantAccounts:
		return fmt.Errorf("tenant_accounts must be 0 to %d", MaxTenantAccounts)
	}
	if _, err := c.issuer(); err != nil {
		return err
	}
	if _, err := c.xkey(); err != nil {
		return err
	}
	return nil
}

func (c *Credentials) issuer() (nkeys.KeyPair, error) {
	if !strings.HasPrefix(c.IssuerSeed, "SA") {
		return nil, errors.New("issuer_seed is not an account nkey seed (SA…)")
	}
	kp, err := nkeys.FromSeed([]byte(c.IssuerSeed))
	if err != nil {
		return nil, errors.New("issuer_seed is not a valid nkey seed")
	}
	return kp, nil
}

func (c *Credentials) xkey() (nkeys.KeyPair, error) {
	if !strings.HasPrefix(c.XKeySeed, "SX") {
		return nil, errors.New("xkey_seed is not a curve nkey seed (SX…)")
	}
	kp, err := nkeys.FromCurveSeed([]byte(c.XKeySeed))
	if err != nil {
		return nil, errors.New("xkey_seed is not a valid curve seed")
	}
	return kp, nil
}

// WriteFile writes the credentials to path, mode 0600, refusing to replace
// a file that exists (it may hold the credentials a server runs with).
func (c *Credentials) WriteFile(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeNew(path, append(b, '\n'))
}

// writeNew writes a new file, 0600.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: not replaced", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ServerConfig is the part of an external nats-server's configuration
// (≥ 2.10; include it from the server's file, on every server of a
// cluster) that goes with c: the accounts AUTH (the callout service),
// TENANTS (the tenants' users, with JetStream; FIFO groups are each
// tenant stream's own subject transform, no mapping) and SYS, and the auth callout that hands every other
// connection to Bulkhead. The passwords are there as bcrypt hashes only;
// the keys as public keys only.
func (c *Credentials) ServerConfig() (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	issuer, _ := c.issuer()
	xkey, _ := c.xkey()
	issuerPub, err := issuer.PublicKey()
	if err != nil {
		return "", err
	}
	xkeyPub, err := xkey.PublicKey()
	if err != nil {
		return "", err
	}
	authHash, err := bcrypt.GenerateFromPassword([]byte(c.AuthPassword), bcrypt.DefaultCost)
	if err != nil {
		return "", err
	}
	streamsHash, err := bcrypt.GenerateFromPassword([]byte(c.StreamsPassword), bcrypt.DefaultCost)
	if err != nil {
		return "", err
	}
	// Bulkhead's system user, if any: in SYS, and past the callout.
	sysAccount, authUsers := "{}", fmt.Sprintf("%q, %q", c.AuthUser, c.StreamsUser)
	if c.SysUser != "" {
		sysHash, err := bcrypt.GenerateFromPassword([]byte(c.SysPassword), bcrypt.DefaultCost)
		if err != nil {
			return "", err
		}
		sysAccount = fmt.Sprintf("{ users: [ { user: %q, password: %q } ] }", c.SysUser, sysHash)
		authUsers += fmt.Sprintf(", %q", c.SysUser)
	}
	return fmt.Sprintf(`# Bulkhead's part of the NATS server's configuration (bulkhead nats-config).
# Include it from the server's configuration, on every server of the cluster,
# beside the server's own jetstream { store_dir: … } block: nats-server ≥ 2.10.
# Clients connect with a Bulkhead token; Bulkhead, the auth callout service,
# answers with a user in TENANTS limited to its tenant's subjects and stream.

system_account: %[1]s

accounts {
  %[2]s {
    # JetStream for Bulkhead's record of which tenant holds which account
    jetstream: enabled
    users: [ { user: %[3]q, password: %[4]q } ]
  }
  %[5]s {
    jetstream: enabled
    users: [ { user: %[6]q, password: %[7]q } ]
  }
  %[1]s %[11]s
  # One account per tenant that connects (Bulkhead assigns them): a tenant's
  # subjects, stream and replies stay in an account no other tenant is in.
%[10]s}

authorization {
  # a connection must be authenticated (the callout included) within this many seconds
  timeout: 5
  auth_callout {
    issuer: %[8]s
    xkey: %[9]s
    account: %[2]s
    auth_users: [ %[12]s ]
  }
}
`, systemAccount, authAccount, c.AuthUser, authHash, tenantsAccount, c.StreamsUser, streamsHash,
		issuerPub, xkeyPub, slotAccounts(c.TenantAccounts), sysAccount, authUsers), nil
}

// The files WriteConfig writes (bulkhead nats-config).
const (
	ServerConfigFile = "bulkhead-nats.conf"
	CredentialsFile  = "bulkhead-nats-credentials.json"
)

// WriteConfig makes fresh credentials and writes them and the server's
// configuration that goes with them into dir (made 0700 if need be), as
// ServerConfigFile and CredentialsFile, both 0600; it replaces neither.
func WriteConfig(dir string, tenantAccounts int) (conf, creds string, err error) {
	conf, creds = filepath.Join(dir, ServerConfigFile), filepath.Join(dir, CredentialsFile)
	for _, p := range []string{conf, creds} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("events: %s exists: not replaced", p)
		}
	}
	c, err := NewCredentials()
	if err != nil {
		return "", "", err
	}
	c.TenantAccounts = tenantAccounts
	text, err := c.ServerConfig()
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("events: %w", err)
	}
	if err := c.WriteFile(creds); err != nil {
		return "", "", fmt.Errorf("events: %w", err)
	}
	if err := writeNew(conf, []byte(text)); err != nil {
		return "", "", fmt.Errorf("events: %w", err)
	}
	return conf, creds, nil
}
