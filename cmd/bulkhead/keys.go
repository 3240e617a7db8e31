package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const keyUsage = `Usage:
  bulkhead key create --tenant T [--alias alias/NAME] [--description D] [--origin bulkhead|external] [--rotation-period 8760h]
  bulkhead key list --tenant T [--limit N] [--cursor C]
  bulkhead key get KEY --tenant T
  bulkhead key rotate KEY --tenant T
  bulkhead key schedule-deletion KEY --tenant T [--days 7..30]
  bulkhead key cancel-deletion KEY --tenant T
  bulkhead key import-params KEY --tenant T
  bulkhead key import KEY --tenant T --import-token TOKEN --file WRAPPED [--valid-to RFC3339]
KEY is a key id (key_…) or an alias (alias/…); onboarding gives every tenant
alias/customer-<tenant>. Keys are managed by the operator or the tenant's admins.
rotate adds a version: older versions still decrypt what they encrypted.
schedule-deletion destroys the key's material after --days (default 30), and
with it everything the key encrypted; cancel-deletion stops it meanwhile.
Bring your own key: create a key with --origin external, then import-params
prints a one-time RSA-3072 public key (PEM) and an import token (valid 24
hours). Wrap 32 random bytes with RSA-OAEP-SHA256 under that key, e.g.
  openssl pkeyutl -encrypt -pubin -inkey import.pem -in material.bin -out wrapped.bin \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
and upload wrapped.bin with import (--file - reads it from stdin). The import
token is --import-token: --token is the bearer token, as everywhere.
Common flags: --addr, --token, --output json|table`

const kmsUsage = `Usage:
  bulkhead kms encrypt --key KEY (--plaintext TEXT | --file PATH) --context tenant_id=T [--context k=v]...
  bulkhead kms decrypt (--ciphertext BASE64 | --file PATH) --context tenant_id=T [--context k=v]...
The kms commands use a tenant's keys with a tenant credential (BULKHEAD_TOKEN
or --token): a token of a client of the tenant with the scopes kms:encrypt
and/or kms:decrypt, or a tenant admin's. The operator's token is refused.
KEY is a key id (key_…) or an alias, e.g. alias/customer-<tenant>.
The encryption context (--context k=v, repeatable) is bound to the ciphertext:
it must hold tenant_id=<the caller's tenant>, and decrypt needs exactly the
pairs encrypt was given.
encrypt takes 1 to 4096 bytes (--file - reads them from stdin; --plaintext
puts them on the command line, where ps and shell history see them) and
prints the ciphertext in base64 (--output json adds key_id and key_version).
decrypt takes that base64 (--file: a file holding it, - for stdin) and writes
the plaintext as it is to stdout (--output json: base64, in JSON).
Common flags: --addr, --token, --output json|table`

// keyVerb begins a verb of a tenant's keys: its flag set, with the
// --tenant it requires.
func keyVerb(name string) (*flag.FlagSet, *clientFlags, *tenantFlag) {
	fs, cf := clientFlagSet("key "+name, keyUsage)
	tf := &tenantFlag{}
	tf.register(fs, "keys")
	return fs, cf, tf
}

// keyCreate runs bulkhead key create.
func keyCreate(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := keyVerb("create")
	var in client.CreateKeyRequest
	fs.StringVar(&in.Alias, "alias", "", "an alias for the key: alias/ and 1 to 250 of a-z A-Z 0-9 / _ -")
	fs.StringVar(&in.Description, "description", "", "what the key is for")
	fs.StringVar(&in.Origin, "origin", client.KeyOriginBulkhead, "bulkhead (Bulkhead makes the material) or external (import it)")
	fs.StringVar(&in.RotationPeriod, "rotation-period", "", "rotate automatically after this duration (24h to 87600h; default none)")
	if _, err := parseArgs(fs, args, 0, s.err, tf); err != nil {
		return err
	}
	if in.Origin != client.KeyOriginBulkhead && in.Origin != client.KeyOriginExternal {
		return fmt.Errorf("%w: --origin must be bulkhead or external", errUsage)
	}
	if in.RotationPeriod != "" {
		if _, err := time.ParseDuration(in.RotationPeriod); err != nil {
			return fmt.Errorf("%w: --rotation-period %q is not a duration (e.g. 8760h)", errUsage, in.RotationPeriod)
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	k, err := c.CreateKey(ctx, tf.id, in)
	if err != nil {
		return err
	}
	return printKey(s.out, cf.output, k)
}

func keyList(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := keyVerb("list")
	var lf listFlags
	lf.register(fs)
	_, c, err := cf.open(fs, args, 0, s.err, tf)
	if err != nil {
		return err
	}
	page, err := c.ListKeys(ctx, tf.id, lf.limit, lf.cursor)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, page)
	}
	printKeys(s.out, page.Items)
	printMore(s.out, page.NextCursor)
	return nil
}

// keyAction returns the verb name that makes one call on the key its
// argument names (get, rotate, cancel-deletion) and prints the key.
func keyAction(name string, call func(*client.Client, context.Context, string, string) (client.Key, error)) func(context.Context, stdio, []string) error {
	return func(ctx context.Context, s stdio, args []string) error {
		fs, cf, tf := keyVerb(name)
		pos, c, err := cf.open(fs, args, 1, s.err, tf)
		if err != nil {
			return err
		}
		k, err := call(c, ctx, tf.id, pos[0])
		if err != nil {
			return err
		}
		return printKey(s.out, cf.output, k)
	}
}

// keyScheduleDeletion runs bulkhead key schedule-deletion.
func keyScheduleDeletion(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := keyVerb("schedule-deletion")
	var days int
	fs.IntVar(&days, "days", client.DefaultKeyDeletionDays, "destroy the material after this many days (7 to 30)")
	pos, err := parseArgs(fs, args, 1, s.err, tf)
	if err != nil {
		return err
	}
	if days < client.MinKeyDeletionDays || days > client.MaxKeyDeletionDays {
		return fmt.Errorf("%w: --days must be %d to %d", errUsage, client.MinKeyDeletionDays, client.MaxKeyDeletionDays)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	k, err := c.ScheduleKeyDeletion(ctx, tf.id, pos[0], days)
	if err != nil {
		return err
	}
	return printKey(s.out, cf.output, k)
}

// keyImportParams runs bulkhead key import-params: a one-time public key
// and import token, to wrap key material for import.
func keyImportParams(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := keyVerb("import-params")
	pos, c, err := cf.open(fs, args, 1, s.err, tf)
	if err != nil {
		return err
	}
	ip, err := c.GetImportParams(ctx, tf.id, pos[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, ip)
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY_ID\tIMPORT_TOKEN\tALGORITHM\tEXPIRES")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ip.KeyID, ip.ImportToken, ip.Algorithm, ip.ExpiresAt.Format(time.RFC3339))
	tw.Flush()
	fmt.Fprintf(s.out, "\n%s\n", strings.TrimRight(ip.PublicKey, "\n"))
	return nil
}

// keyImport runs bulkhead key import: wrapped key material uploaded.
func keyImport(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := keyVerb("import")
	var imp client.ImportRequest
	var file, validTo string
	fs.StringVar(&imp.ImportToken, "import-token", "", "the import token from import-params (required)")
	fs.StringVar(&file, "file", "", "the wrapped key material, binary (- for stdin; required)")
	fs.StringVar(&validTo, "valid-to", "", "an RFC 3339 time after which the material stops working until imported again")
	pos, err := parseArgs(fs, args, 1, s.err, tf)
	if err != nil {
		return err
	}
	if imp.ImportToken == "" || file == "" {
		return fmt.Errorf("%w: import needs --import-token TOKEN (from import-params) and --file WRAPPED (- for stdin)", errUsage)
	}
	if validTo != "" {
		t, err := time.Parse(time.RFC3339Nano, validTo)
		if err != nil {
			return fmt.Errorf("%w: --valid-to %q is not an RFC 3339 time", errUsage, validTo)
		}
		imp.ValidTo = &t
	}
	if imp.EncryptedKeyMaterial, err = readSource(file, s.in); err != nil {
		return err
	}
	if len(imp.EncryptedKeyMaterial) == 0 {
		return fmt.Errorf("%w: --file %s is empty", errUsage, file)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	k, err := c.ImportKeyMaterial(ctx, tf.id, pos[0], imp)
	if err != nil {
		return err
	}
	return printKey(s.out, cf.output, k)
}

// printKey prints one key and its versions.
func printKey(w io.Writer, output string, k client.Key) error {
	if output == "json" {
		return printJSON(w, k)
	}
	printKeys(w, []client.Key{k})
	printKeyVersions(w, k)
	return nil
}

func printKeys(w io.Writer, ks []client.Key) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY_ID\tALIASES\tSTATE\tORIGIN\tPRIMARY\tVERSIONS\tROTATION\tDELETION\tDESCRIPTION")
	for _, k := range ks {
		primary := "-"
		if k.PrimaryVersion > 0 {
			primary = strconv.Itoa(k.PrimaryVersion)
		}
		deletion := "-"
		if k.DeletionAt != nil {
			deletion = k.DeletionAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", k.ID, orDash(strings.Join(k.Aliases, ",")), k.State, k.Origin,
			primary, len(k.Versions), orDash(k.RotationPeriod), deletion, k.Description)
	}
	tw.Flush()
}

// printKeyVersions prints the versions of one key, after its line.
func printKeyVersions(w io.Writer, k client.Key) {
	if len(k.Versions) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATUS\tCREATED\tVALID_TO")
	for _, v := range k.Versions {
		status := "enabled"
		switch {
		case v.Destroyed:
			status = "destroyed"
		case v.Version == k.PrimaryVersion:
			status = "primary"
		}
		validTo := "-"
		if v.ValidTo != nil {
			validTo = v.ValidTo.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", v.Version, status, v.CreatedAt.Format(time.RFC3339), validTo)
	}
	tw.Flush()
}

// contextFlag is the encryption context as repeatable --context k=v.
type contextFlag map[string]string

func (c contextFlag) String() string {
	var pairs []string
	for k, v := range c {
		pairs = append(pairs, k+"="+v)
	}
	return strings.Join(pairs, ",")
}

func (c contextFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	switch {
	case !ok || k == "":
		return fmt.Errorf("want k=v, got %q", s)
	case hasKey(c, k):
		return fmt.Errorf("the context key %q is given twice", k)
	}
	c[k] = v
	return nil
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// kmsHint adds what to do to the server's refusals of a credential.
func kmsHint(err error) error {
	var e *client.Error
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code {
	case "tenant_credential_required":
		return fmt.Errorf("%w\n(the kms commands need a tenant's credential in BULKHEAD_TOKEN or --token, e.g. a client_credentials token of a client of the tenant with the kms scopes; not the operator's token)", err)
	case "scope_required":
		return fmt.Errorf("%w\n(ask for the token with that scope; the client must be registered with it: bulkhead client create ... --scope)", err)
	case "context_tenant_mismatch":
		return fmt.Errorf("%w\n(--context tenant_id= must name the tenant of the token)", err)
	}
	return err
}

// kmsData are the flags of what kms encrypt and decrypt work on: the
// encryption context, and the data, inline or from a file.
type kmsData struct {
	ec         contextFlag
	text, file string
}

// register adds --context, --file and the inline flag (plaintext or
// ciphertext).
func (d *kmsData) register(fs *flag.FlagSet, inline, inlineUsage, fileUsage string) {
	d.ec = contextFlag{}
	fs.Var(d.ec, "context", "a pair k=v of the encryption context (repeatable; tenant_id=<tenant> is required)")
	fs.StringVar(&d.text, inline, "", inlineUsage)
	fs.StringVar(&d.file, "file", "", fileUsage)
}

// read checks the flags of verb, whose inline flag is given as what (e.g.
// "--plaintext TEXT"), and returns the data: inline, or read from --file.
func (d *kmsData) read(verb, what string, stdin io.Reader) ([]byte, error) {
	switch {
	case d.text != "" && d.file != "":
		return nil, fmt.Errorf("%w: %s and --file exclude each other", errUsage, strings.Fields(what)[0])
	case d.text == "" && d.file == "":
		return nil, fmt.Errorf("%w: %s needs %s or --file PATH (- for stdin)", errUsage, verb, what)
	case !hasKey(d.ec, "tenant_id"):
		return nil, fmt.Errorf("%w: the encryption context must hold the caller's tenant: --context tenant_id=<tenant>", errUsage)
	case d.file != "":
		return readSource(d.file, stdin)
	}
	return []byte(d.text), nil
}

// kmsEncrypt runs bulkhead kms encrypt: the ciphertext in base64.
func kmsEncrypt(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("kms encrypt", kmsUsage)
	var d kmsData
	var keyID string
	fs.StringVar(&keyID, "key", "", "the key id or alias to encrypt under, e.g. alias/customer-<tenant> (required)")
	d.register(fs, "plaintext", "the text to encrypt", "read the bytes to encrypt from a file (- for stdin)")
	if _, err := parseArgs(fs, args, 0, s.err); err != nil {
		return err
	}
	if keyID == "" {
		return fmt.Errorf("%w: encrypt needs --key KEY (a key id or alias, e.g. alias/customer-<tenant>)", errUsage)
	}
	data, err := d.read("encrypt", "--plaintext TEXT", s.in)
	if err != nil {
		return err
	}
	defer clear(data)
	c, err := cf.client()
	if err != nil {
		return err
	}
	out, err := c.Encrypt(ctx, keyID, data, d.ec)
	if err != nil {
		return kmsHint(err)
	}
	if cf.output == "json" {
		return printJSON(s.out, out)
	}
	_, err = fmt.Fprintln(s.out, base64.StdEncoding.EncodeToString(out.Ciphertext))
	return err
}

// kmsDecrypt runs bulkhead kms decrypt: the plaintext as it is.
func kmsDecrypt(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("kms decrypt", kmsUsage)
	var d kmsData
	d.register(fs, "ciphertext", "the ciphertext, in base64, as encrypt printed it", "read the base64 ciphertext from a file (- for stdin)")
	if _, err := parseArgs(fs, args, 0, s.err); err != nil {
		return err
	}
	b64, err := d.read("decrypt", "--ciphertext BASE64", s.in)
	if err != nil {
		return err
	}
	ct, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(b64)), ""))
	clear(b64)
	if err != nil || len(ct) == 0 {
		return fmt.Errorf("%w: the ciphertext is not base64 (as kms encrypt prints it)", errUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	out, err := c.Decrypt(ctx, ct, d.ec)
	if err != nil {
		return kmsHint(err)
	}
	defer clear(out.Plaintext)
	if cf.output == "json" {
		return printJSON(s.out, out)
	}
	_, err = s.out.Write(out.Plaintext)
	return err
}
