package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// wrapForImport wraps 32 bytes of key material as an importer does: with
// RSA-OAEP-SHA256 under the PEM public key that key import-params printed.
func wrapForImport(t *testing.T, printed string) []byte {
	t.Helper()
	block, _ := pem.Decode([]byte(printed))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("no PEM public key in:\n%s", printed)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok || rsaPub.N.BitLen() != 3072 {
		t.Fatalf("import public key: %T, want RSA-3072", pub)
	}
	material := make([]byte, 32)
	rand.Read(material)
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rsaPub, material, nil)
	if err != nil {
		t.Fatal(err)
	}
	return wrapped
}

// clientToken gets a client_credentials token with the given scopes
// (space-separated; "" asks for none).
func clientToken(t *testing.T, base, id, secret, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	resp, err := http.DefaultClient.Do(tokenRequest(t, base, id, secret, form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("token with scope %q: %d %v", scope, resp.StatusCode, err)
	}
	return tok.AccessToken
}

// TestCLIKeysAndKMS drives the key and kms commands against a real server:
// the tenant's default key, a key of its own rotated and scheduled for
// deletion (and spared), a key with imported material, and encryption and
// decryption with a tenant client's token, which the operator's token may
// not do.
func TestCLIKeysAndKMS(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		dataDir := filepath.Join(t.TempDir(), "data")
		if filepath.IsAbs(dsn) {
			dsn = "" // the embedded SQLite default
		}
		p := startServe(t, dataDir, dsn)
		// cli2 runs a command with stdin and returns its stdout and stderr apart.
		cli2 := func(stdin string, wantCode int, args ...string) (string, string) {
			t.Helper()
			out, errOut, code := runCLIInput(t, p.url, stdin, args...)
			if code != wantCode {
				t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
			}
			return out, errOut
		}
		cli := func(wantCode int, args ...string) string {
			t.Helper()
			out, errOut := cli2("", wantCode, args...)
			return out + errOut
		}
		keyJSON := func(stdin string, args ...string) client.Key {
			t.Helper()
			out, _ := cli2(stdin, 0, append(args, "--output", "json")...)
			var k client.Key
			if err := json.Unmarshal([]byte(out), &k); err != nil {
				t.Fatalf("bulkhead %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return k
		}
		dir := t.TempDir()
		cli(0, "tenant", "create", "acme")

		// Onboarding made the tenant's default key.
		out := cli(0, "key", "list", "--tenant", "acme")
		if !regexp.MustCompile(`(?m)^key_\S+\s+alias/customer-acme\s+enabled\s+bulkhead\s+1\s+1\s+8760h0m0s\s+-\s+default key of acme$`).MatchString(out) {
			t.Fatalf("key list shows the default key:\n%s", out)
		}
		def := keyJSON("", "key", "get", "alias/customer-acme", "--tenant", "acme")
		if !strings.HasPrefix(def.ID, "key_") || !slices.Equal(def.Aliases, []string{client.DefaultKeyAlias("acme")}) || len(def.Versions) != 1 {
			t.Fatalf("key get by alias: %+v", def)
		}

		// A key of the tenant's own: created, rotated, scheduled for deletion, spared.
		app := keyJSON("", "key", "create", "--tenant", "acme", "--alias", "alias/app", "--description", "app data", "--rotation-period", "720h")
		if app.State != client.KeyStateEnabled || app.Origin != client.KeyOriginBulkhead || app.RotationPeriod != "720h0m0s" ||
			app.PrimaryVersion != 1 || app.NextRotationAt == nil || !slices.Equal(app.Aliases, []string{"alias/app"}) || app.Description != "app data" {
			t.Fatalf("key create: %+v", app)
		}
		if out = cli(1, "key", "create", "--tenant", "acme", "--alias", "alias/app"); !strings.Contains(out, "409 alias_exists") {
			t.Errorf("a second key with the alias:\n%s", out)
		}
		if out = cli(1, "key", "create", "--tenant", "acme", "--alias", "alias/customer-mine"); !strings.Contains(out, "400 invalid_alias") {
			t.Errorf("a reserved alias:\n%s", out)
		}
		if out = cli(0, "key", "rotate", app.ID, "--tenant", "acme"); !regexp.MustCompile(`(?m)^` + app.ID + `\s+alias/app\s+enabled\s+bulkhead\s+2\s+2\s`).MatchString(out) {
			t.Errorf("key rotate:\n%s", out)
		}
		out = cli(0, "key", "get", "alias/app", "--tenant", "acme")
		if !regexp.MustCompile(`(?m)^1\s+enabled\s+\S+\s+-$`).MatchString(out) || !regexp.MustCompile(`(?m)^2\s+primary\s+\S+\s+-$`).MatchString(out) {
			t.Errorf("key get shows both versions, 2 primary:\n%s", out)
		}
		if k := keyJSON("", "key", "get", app.ID, "--tenant", "acme"); len(k.Versions) != 2 || k.PrimaryVersion != 2 || k.Versions[0].Version != 1 {
			t.Errorf("key get --output json after rotate: %+v", k)
		}
		k := keyJSON("", "key", "schedule-deletion", "alias/app", "--tenant", "acme", "--days", "7")
		if k.State != client.KeyStatePendingDeletion || k.DeletionAt == nil || time.Until(*k.DeletionAt) < 6*24*time.Hour || time.Until(*k.DeletionAt) > 8*24*time.Hour {
			t.Errorf("schedule-deletion --days 7: %+v", k)
		}
		if out = cli(1, "key", "rotate", app.ID, "--tenant", "acme"); !strings.Contains(out, "409 key_pending_deletion") {
			t.Errorf("rotate a key pending deletion:\n%s", out)
		}
		if out = cli(1, "key", "schedule-deletion", app.ID, "--tenant", "acme"); !strings.Contains(out, "409 key_pending_deletion") {
			t.Errorf("schedule the deletion twice:\n%s", out)
		}
		if k = keyJSON("", "key", "cancel-deletion", app.ID, "--tenant", "acme"); k.State != client.KeyStateEnabled || k.DeletionAt != nil || k.PrimaryVersion != 2 {
			t.Errorf("cancel-deletion: %+v", k)
		}
		if out = cli(1, "key", "cancel-deletion", app.ID, "--tenant", "acme"); !strings.Contains(out, "409 key_not_pending_deletion") {
			t.Errorf("cancel a deletion not scheduled:\n%s", out)
		}
		for _, name := range []string{"alias/nope", "key_nope"} {
			if out = cli(1, "key", "get", name, "--tenant", "acme"); !strings.Contains(out, "404 key_not_found") {
				t.Errorf("key get %s:\n%s", name, out)
			}
		}
		if out = cli(1, "key", "list", "--tenant", "globex"); !strings.Contains(out, "404 tenant_not_found") {
			t.Errorf("keys of a tenant that does not exist:\n%s", out)
		}

		// Bring your own key: import-params, wrap, import; twice (table and file,
		// then JSON and stdin); a used token and material that is not OAEP fail.
		byok := keyJSON("", "key", "create", "--tenant", "acme", "--origin", "external", "--alias", "alias/byok", "--description", "from our HSM")
		if byok.State != client.KeyStatePendingImport || byok.Origin != client.KeyOriginExternal || byok.PrimaryVersion != 0 || len(byok.Versions) != 0 {
			t.Fatalf("create --origin external: %+v", byok)
		}
		if out = cli(1, "key", "rotate", "alias/byok", "--tenant", "acme"); !strings.Contains(out, "409 key_pending_import") {
			t.Errorf("rotate a key without material:\n%s", out)
		}
		if out = cli(1, "key", "import-params", "alias/app", "--tenant", "acme"); !strings.Contains(out, "409 import_not_supported") {
			t.Errorf("import-params of a key Bulkhead made:\n%s", out)
		}
		out = cli(0, "key", "import-params", "alias/byok", "--tenant", "acme")
		m := regexp.MustCompile(`(?m)^` + byok.ID + `\s+(imp_[a-z2-7]+)\s+RSAES_OAEP_SHA_256\s+\S+$`).FindStringSubmatch(out)
		if m == nil || !strings.Contains(out, "-----BEGIN PUBLIC KEY-----") {
			t.Fatalf("import-params prints the token and the PEM key:\n%s", out)
		}
		wrappedFile := filepath.Join(dir, "wrapped.bin")
		if err := os.WriteFile(wrappedFile, wrapForImport(t, out), 0o600); err != nil {
			t.Fatal(err)
		}
		validTo := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
		k = keyJSON("", "key", "import", "alias/byok", "--tenant", "acme", "--import-token", m[1], "--file", wrappedFile, "--valid-to", validTo.Format(time.RFC3339))
		if k.ID != byok.ID || k.State != client.KeyStateEnabled || k.PrimaryVersion != 1 || len(k.Versions) != 1 ||
			k.Versions[0].ValidTo == nil || !k.Versions[0].ValidTo.Equal(validTo) {
			t.Fatalf("key import: %+v", k)
		}
		if out = cli(1, "key", "import", byok.ID, "--tenant", "acme", "--import-token", m[1], "--file", wrappedFile); !strings.Contains(out, "400 invalid_import_token") {
			t.Errorf("an import token used twice:\n%s", out)
		}
		var ip client.ImportParams
		if err := json.Unmarshal([]byte(cli(0, "key", "import-params", byok.ID, "--tenant", "acme", "--output", "json")), &ip); err != nil ||
			ip.KeyID != byok.ID || !strings.HasPrefix(ip.ImportToken, "imp_") || ip.Algorithm != "RSAES_OAEP_SHA_256" {
			t.Fatalf("import-params --output json: %v %+v", err, ip)
		}
		garbage := make([]byte, 384)
		rand.Read(garbage)
		if out, errOut := cli2(string(garbage), 1, "key", "import", byok.ID, "--tenant", "acme", "--import-token", ip.ImportToken, "--file", "-"); !strings.Contains(out+errOut, "400 invalid_key_material") {
			t.Errorf("material that is not RSA-OAEP under the import key:\n%s%s", out, errOut)
		}
		k = keyJSON(string(wrapForImport(t, ip.PublicKey)), "key", "import", byok.ID, "--tenant", "acme", "--import-token", ip.ImportToken, "--file", "-")
		if k.PrimaryVersion != 2 || len(k.Versions) != 2 || k.Versions[1].ValidTo != nil {
			t.Fatalf("second import from stdin: %+v", k)
		}
		if out = cli(0, "key", "list", "--tenant", "acme"); strings.Count(out, "\nkey_") != 3 ||
			!regexp.MustCompile(`(?m)^`+byok.ID+`\s+alias/byok\s+enabled\s+external\s+2\s+2\s+-\s+-\s+from our HSM$`).MatchString(out) {
			t.Errorf("key list with three keys:\n%s", out)
		}

		// Encryption with a tenant client's token.
		out = cli(0, "client", "create", "svc", "--tenant", "acme", "--grant", "client_credentials", "--scope", "kms:encrypt", "--scope", "kms:decrypt")
		secret := regexp.MustCompile(`client secret \(shown once\): (bhs_\S+)`).FindStringSubmatch(out)
		id := regexp.MustCompile(`(cli_[a-z2-7]{26})`).FindStringSubmatch(out)
		if secret == nil || id == nil {
			t.Fatalf("client create:\n%s", out)
		}
		tok := clientToken(t, p.url, id[1], secret[1], "kms:encrypt kms:decrypt")
		ctxArgs := []string{"--context", "tenant_id=acme", "--context", "record=r1", "--token", tok}
		kms := func(stdin string, wantCode int, args ...string) (string, string) {
			t.Helper()
			return cli2(stdin, wantCode, append(append([]string{"kms"}, args...), ctxArgs...)...)
		}
		const secretText = "the launch codes"
		ctOut, _ := kms("", 0, "encrypt", "--key", "alias/customer-acme", "--plaintext", secretText)
		ct := strings.TrimSpace(ctOut)
		if raw, err := base64.StdEncoding.DecodeString(ct); err != nil || !strings.HasSuffix(ctOut, "\n") || strings.Count(ctOut, "\n") != 1 || bytes.Contains(raw, []byte(secretText)) {
			t.Fatalf("kms encrypt prints one line of base64: %v %q", err, ctOut)
		}
		if pt, _ := kms("", 0, "decrypt", "--ciphertext", ct); pt != secretText {
			t.Errorf("kms decrypt printed %q; want %q, raw", pt, secretText)
		}
		if pt, _ := kms(ctOut, 0, "decrypt", "--file", "-"); pt != secretText {
			t.Errorf("kms decrypt --file - printed %q", pt)
		}
		// Binary data from a file, --output json, a rotated key, imported material.
		data := make([]byte, 300)
		rand.Read(data)
		dataFile := filepath.Join(dir, "data.bin")
		if err := os.WriteFile(dataFile, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var enc client.Encrypted
		encOut, _ := kms("", 0, "encrypt", "--key", "alias/customer-acme", "--file", dataFile, "--output", "json")
		if err := json.Unmarshal([]byte(encOut), &enc); err != nil || enc.KeyID != def.ID || enc.KeyVersion != 1 {
			t.Fatalf("kms encrypt --output json: %v %s", err, encOut)
		}
		cli(0, "key", "rotate", "alias/customer-acme", "--tenant", "acme")
		ctFile := filepath.Join(dir, "ct.b64")
		if err := os.WriteFile(ctFile, []byte(base64.StdEncoding.EncodeToString(enc.Ciphertext)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if pt, _ := kms("", 0, "decrypt", "--file", ctFile); pt != string(data) {
			t.Errorf("kms decrypt of binary data after the key's rotation: %d bytes, want %d", len(pt), len(data))
		}
		var dec client.Decrypted
		decOut, _ := kms("", 0, "decrypt", "--file", ctFile, "--output", "json")
		if err := json.Unmarshal([]byte(decOut), &dec); err != nil || !bytes.Equal(dec.Plaintext, data) || dec.KeyID != def.ID || dec.KeyVersion != 1 {
			t.Errorf("kms decrypt --output json: %v %s", err, decOut)
		}
		for key, want := range map[string]client.Encrypted{"alias/customer-acme": {KeyID: def.ID, KeyVersion: 2},
			"alias/app": {KeyID: app.ID, KeyVersion: 2}, byok.ID: {KeyID: byok.ID, KeyVersion: 2}} {
			out, _ := kms("", 0, "encrypt", "--key", key, "--plaintext", "x", "--output", "json")
			var got client.Encrypted
			if err := json.Unmarshal([]byte(out), &got); err != nil || got.KeyID != want.KeyID || got.KeyVersion != want.KeyVersion {
				t.Errorf("encrypt under %s: %v %s; want key %s v%d", key, err, out, want.KeyID, want.KeyVersion)
			}
		}

		// Refusals: a wrong or partial context, another tenant's context, the
		// operator's token, a token without the scopes, a key pending deletion.
		for _, ec := range [][]string{
			{"--context", "tenant_id=acme", "--context", "record=r2"},
			{"--context", "tenant_id=acme"},
			{"--context", "tenant_id=acme", "--context", "record=r1", "--context", "extra=1"},
		} {
			out, errOut, code := runCLI(t, p.url, append([]string{"kms", "decrypt", "--ciphertext", ct, "--token", tok}, ec...)...)
			if code != 1 || out != "" || !strings.Contains(errOut, "400 invalid_ciphertext") || !strings.Contains(errOut, "does not decrypt with this encryption context") {
				t.Errorf("decrypt with %v: exit %d\nstdout: %q\nstderr: %s", ec, code, out, errOut)
			}
		}
		if out, errOut, code := runCLI(t, p.url, "kms", "encrypt", "--key", "alias/customer-acme", "--plaintext", "x", "--context", "tenant_id=globex", "--token", tok); code != 1 ||
			!strings.Contains(errOut, "403 context_tenant_mismatch") {
			t.Errorf("a context naming another tenant: exit %d\n%s%s", code, out, errOut)
		}
		for _, args := range [][]string{
			{"kms", "encrypt", "--key", "alias/customer-acme", "--plaintext", "x", "--context", "tenant_id=acme"},
			{"kms", "decrypt", "--ciphertext", ct, "--context", "tenant_id=acme", "--context", "record=r1"},
		} {
			// runCLI's BULKHEAD_TOKEN is the operator's.
			out, errOut, code := runCLI(t, p.url, args...)
			if code != 1 || out != "" || !strings.Contains(errOut, "403 tenant_credential_required") || !strings.Contains(errOut, "not the operator's token") {
				t.Errorf("bulkhead %s with the operator's token: exit %d\nstdout: %q\nstderr: %s", strings.Join(args, " "), code, out, errOut)
			}
		}
		noScopes := clientToken(t, p.url, id[1], secret[1], "")
		if out, errOut, code := runCLI(t, p.url, "kms", "encrypt", "--key", "alias/customer-acme", "--plaintext", "x", "--context", "tenant_id=acme", "--token", noScopes); code != 1 ||
			!strings.Contains(errOut, `403 scope_required: this operation needs the scope "kms:encrypt"`) {
			t.Errorf("a token without the kms scopes: exit %d\n%s%s", code, out, errOut)
		}
		cli(0, "key", "schedule-deletion", "alias/app", "--tenant", "acme")
		if _, errOut := kms("", 1, "encrypt", "--key", "alias/app", "--plaintext", "x"); !strings.Contains(errOut, "409 key_pending_deletion") {
			t.Errorf("encrypt under a key pending deletion:\n%s", errOut)
		}
		cli(0, "key", "cancel-deletion", "alias/app", "--tenant", "acme")
		if out, errOut := kms("", 1, "encrypt", "--key", "alias/customer-acme", "--file", filepath.Join(dir, "missing")); !strings.Contains(out+errOut, "no such file") {
			t.Errorf("encrypt --file of a missing file:\n%s%s", out, errOut)
		}

		// The key changes are in the tenant's audit trail.
		var audit client.AuditPage
		if err := json.Unmarshal([]byte(cli(0, "audit", "list", "--tenant", "acme", "--limit", "1000", "--output", "json")), &audit); err != nil {
			t.Fatal(err)
		}
		actions := map[string]int{}
		for _, e := range audit.Items {
			actions[e.Action]++
		}
		for _, a := range []string{"kms.key_created", "kms.key_rotated", "kms.key_deletion_scheduled", "kms.key_deletion_canceled",
			"kms.import_params_issued", "kms.key_material_imported"} {
			if actions[a] == 0 {
				t.Errorf("the audit trail lacks %s: %v", a, actions)
			}
		}
	})
}

// TestKeyKMSUsage checks the usage errors (exit 2) and help of the key and
// kms commands, which need no server.
func TestKeyKMSUsage(t *testing.T) {
	const token = "unused-token-0123456789abcdef"
	t.Setenv("BULKHEAD_TOKEN", token)
	t.Setenv("BULKHEAD_ADDR", "http://127.0.0.1:1") // nothing listens: no call may be made
	run1 := runHere
	ec := []string{"--context", "tenant_id=acme"}
	for _, c := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"key"}, "key needs a command"},
		{[]string{"key", "fly"}, `unknown key command "fly"`},
		{[]string{"key", "list"}, "--tenant T is required"},
		{[]string{"key", "list", "--tenant", "acme", "--output", "yaml"}, "--output must be table or json"},
		{[]string{"key", "list", "--tenant", "acme", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"key", "get", "--tenant", "acme"}, "takes 1 argument(s), got 0"},
		{[]string{"key", "get", "k1", "k2", "--tenant", "acme"}, "takes 1 argument(s), got 2"},
		{[]string{"key", "create", "key_x", "--tenant", "acme"}, "takes 0 argument(s), got 1"},
		{[]string{"key", "create", "--tenant", "acme", "--origin", "hsm"}, "--origin must be bulkhead or external"},
		{[]string{"key", "create", "--tenant", "acme", "--rotation-period", "yearly"}, "is not a duration"},
		{[]string{"key", "rotate", "alias/x", "--tenant", "acme", "--days", "7"}, "not defined: -days"},
		{[]string{"key", "schedule-deletion", "alias/x", "--tenant", "acme", "--days", "3"}, "--days must be 7 to 30"},
		{[]string{"key", "schedule-deletion", "alias/x", "--tenant", "acme", "--days", "31"}, "--days must be 7 to 30"},
		{[]string{"key", "import", "alias/x", "--tenant", "acme", "--file", "wrapped.bin"}, "import needs --import-token"},
		{[]string{"key", "import", "alias/x", "--tenant", "acme", "--import-token", "imp_x"}, "import needs --import-token"},
		{[]string{"key", "import", "alias/x", "--tenant", "acme", "--import-token", "imp_x", "--file", "-"}, "--file - is empty"},
		{[]string{"key", "import", "alias/x", "--tenant", "acme", "--import-token", "imp_x", "--file", "-", "--valid-to", "tomorrow"}, "not an RFC 3339 time"},
		{[]string{"kms"}, "kms needs a command"},
		{[]string{"kms", "sign"}, `unknown kms command "sign"`},
		{[]string{"kms", "encrypt", "--plaintext", "x", "--context", "tenant_id=acme"}, "encrypt needs --key"},
		{[]string{"kms", "encrypt", "--key", "alias/x", "--context", "tenant_id=acme"}, "encrypt needs --plaintext TEXT or --file PATH"},
		{[]string{"kms", "encrypt", "--key", "alias/x", "--plaintext", "x", "--file", "f", "--context", "tenant_id=acme"}, "--plaintext and --file exclude each other"},
		{[]string{"kms", "encrypt", "--key", "alias/x", "--plaintext", "x"}, "--context tenant_id=<tenant>"},
		{[]string{"kms", "encrypt", "--key", "alias/x", "--plaintext", "x", "--context", "record=1"}, "--context tenant_id=<tenant>"},
		{[]string{"kms", "encrypt", "--key", "alias/x", "--plaintext", "x", "--context", "tenant_id"}, `want k=v, got "tenant_id"`},
		{[]string{"kms", "encrypt", "--key", "alias/x", "--plaintext", "x", "--context", "=acme"}, `want k=v`},
		{[]string{"kms", "encrypt", "--key", "alias/x", "--plaintext", "x", "--context", "tenant_id=a", "--context", "tenant_id=b"}, "given twice"},
		{[]string{"kms", "encrypt", "extra", "--key", "alias/x", "--plaintext", "x", "--context", "tenant_id=acme"}, "takes 0 argument(s), got 1"},
		{append([]string{"kms", "decrypt"}, ec...), "decrypt needs --ciphertext BASE64 or --file PATH"},
		{append([]string{"kms", "decrypt", "--ciphertext", "not base64!"}, ec...), "the ciphertext is not base64"},
		{append([]string{"kms", "decrypt", "--file", "-"}, ec...), "the ciphertext is not base64"},
		{append([]string{"kms", "decrypt", "--ciphertext", "AQ==", "--key", "alias/x"}, ec...), "not defined: -key"},
	} {
		code, out, errOut := run1("", c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("bulkhead %s: exit %d; want 2 (usage) and %q\n%s", strings.Join(c.args, " "), code, c.want, errOut)
		}
		if strings.Contains(out+errOut, token) {
			t.Errorf("bulkhead %s printed the token", strings.Join(c.args, " "))
		}
	}
	for _, args := range [][]string{{"key", "--help"}, {"key", "help"}, {"kms", "-h"}, {"kms", "help"}} {
		if code, out, _ := run1("", args...); code != 0 || !strings.Contains(out, "Usage:\n  bulkhead "+args[0]+" ") {
			t.Errorf("bulkhead %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	for args, flags := range map[string][]string{
		"key import --help":        {"-import-token", "-file", "-valid-to", "-tenant", "RSA-OAEP-SHA256"},
		"key create --help":        {"-alias", "-origin", "-rotation-period", "-description"},
		"kms encrypt --help":       {"-key", "-plaintext", "-file", "-context", "tenant_id="},
		"kms decrypt -h":           {"-ciphertext", "-file", "-context"},
		"key schedule-deletion -h": {"-days"},
	} {
		code, _, errOut := run1("", strings.Fields(args)...)
		for _, f := range flags {
			if code != 0 || !strings.Contains(errOut, f) {
				t.Errorf("bulkhead %s: exit %d, lacks %s\n%s", args, code, f, errOut)
			}
		}
		if strings.Contains(errOut, token) {
			t.Errorf("bulkhead %s printed the token", args)
		}
	}
	if code, out, _ := run1("", "help"); code != 0 || !strings.Contains(out, "bulkhead key <command>") || !strings.Contains(out, "bulkhead kms <command>") {
		t.Errorf("help lacks the key and kms commands:\n%s", out)
	}
	// No token at all: a usage error, before any call.
	t.Setenv("BULKHEAD_TOKEN", "")
	t.Setenv("BULKHEAD_ADMIN_TOKEN", "")
	for _, args := range [][]string{{"key", "list", "--tenant", "acme"}, {"kms", "decrypt", "--ciphertext", "AQ==", "--context", "tenant_id=acme"}} {
		if code, _, errOut := run1("", args...); code != 2 || !strings.Contains(errOut, "no token") {
			t.Errorf("bulkhead %s without a token: exit %d\n%s", strings.Join(args, " "), code, errOut)
		}
	}
}
