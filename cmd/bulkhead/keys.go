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

// tenantFlag is the --tenant that a tenant's commands require; what says
// what they manage.
func tenantFlag(fs *flag.FlagSet, what string) *string {
	return fs.String("tenant", "", "the tenant whose "+what+" to manage (required)")
}

func keyCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if groupHelp(args, keyUsage, stdout) {
		return nil
	}
	sub, fs, cf, err := subcommand("key", keyUsage, args)
	if err != nil {
		return err
	}
	positional, ok := map[string]int{"create": 0, "list": 0, "get": 1, "rotate": 1, "schedule-deletion": 1,
		"cancel-deletion": 1, "import-params": 1, "import": 1}[sub]
	if !ok {
		return fmt.Errorf("%w: unknown key command %q\n%s", errUsage, sub, keyUsage)
	}
	withUsage(fs, keyUsage)
	tenantID := tenantFlag(fs, "keys")
	var (
		in                          client.CreateKeyRequest
		lf                          listFlags
		days                        int
		importToken, file, validToS string
	)
	switch sub {
	case "create":
		fs.StringVar(&in.Alias, "alias", "", "an alias for the key: alias/ and 1 to 250 of a-z A-Z 0-9 / _ -")
		fs.StringVar(&in.Description, "description", "", "what the key is for")
		fs.StringVar(&in.Origin, "origin", client.KeyOriginBulkhead, "bulkhead (Bulkhead makes the material) or external (import it)")
		fs.StringVar(&in.RotationPeriod, "rotation-period", "", "rotate automatically after this duration (24h to 87600h; default none)")
	case "list":
		lf.register(fs)
	case "schedule-deletion":
		fs.IntVar(&days, "days", client.DefaultKeyDeletionDays, "destroy the material after this many days (7 to 30)")
	case "import":
		fs.StringVar(&importToken, "import-token", "", "the import token from import-params (required)")
		fs.StringVar(&file, "file", "", "the wrapped key material, binary (- for stdin; required)")
		fs.StringVar(&validToS, "valid-to", "", "an RFC 3339 time after which the material stops working until imported again")
	}
	pos, err := parseArgs(fs, args[1:], positional, stderr)
	if err != nil {
		return err
	}
	if *tenantID == "" {
		return fmt.Errorf("%w: --tenant T is required", errUsage)
	}
	var imp client.ImportRequest
	switch sub {
	case "create":
		if in.Origin != client.KeyOriginBulkhead && in.Origin != client.KeyOriginExternal {
			return fmt.Errorf("%w: --origin must be bulkhead or external", errUsage)
		}
		if in.RotationPeriod != "" {
			if _, err := time.ParseDuration(in.RotationPeriod); err != nil {
				return fmt.Errorf("%w: --rotation-period %q is not a duration (e.g. 8760h)", errUsage, in.RotationPeriod)
			}
		}
	case "schedule-deletion":
		if days < client.MinKeyDeletionDays || days > client.MaxKeyDeletionDays {
			return fmt.Errorf("%w: --days must be %d to %d", errUsage, client.MinKeyDeletionDays, client.MaxKeyDeletionDays)
		}
	case "import":
		if importToken == "" || file == "" {
			return fmt.Errorf("%w: import needs --import-token TOKEN (from import-params) and --file WRAPPED (- for stdin)", errUsage)
		}
		if validToS != "" {
			t, err := time.Parse(time.RFC3339Nano, validToS)
			if err != nil {
				return fmt.Errorf("%w: --valid-to %q is not an RFC 3339 time", errUsage, validToS)
			}
			imp.ValidTo = &t
		}
		imp.ImportToken = importToken
		if imp.EncryptedKeyMaterial, err = readSource(file, stdin); err != nil {
			return err
		}
		if len(imp.EncryptedKeyMaterial) == 0 {
			return fmt.Errorf("%w: --file %s is empty", errUsage, file)
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var k client.Key
	switch sub {
	case "create":
		k, err = c.CreateKey(ctx, *tenantID, in)
	case "get":
		k, err = c.GetKey(ctx, *tenantID, pos[0])
	case "rotate":
		k, err = c.RotateKey(ctx, *tenantID, pos[0])
	case "schedule-deletion":
		k, err = c.ScheduleKeyDeletion(ctx, *tenantID, pos[0], days)
	case "cancel-deletion":
		k, err = c.CancelKeyDeletion(ctx, *tenantID, pos[0])
	case "import":
		k, err = c.ImportKeyMaterial(ctx, *tenantID, pos[0], imp)
	case "list":
		page, err := c.ListKeys(ctx, *tenantID, lf.limit, lf.cursor)
		if err != nil {
			return err
		}
		if cf.output == "json" {
			return printJSON(stdout, page)
		}
		printKeys(stdout, page.Items)
		printMore(stdout, page.NextCursor)
		return nil
	case "import-params":
		ip, err := c.GetImportParams(ctx, *tenantID, pos[0])
		if err != nil {
			return err
		}
		if cf.output == "json" {
			return printJSON(stdout, ip)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY_ID\tIMPORT_TOKEN\tALGORITHM\tEXPIRES")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ip.KeyID, ip.ImportToken, ip.Algorithm, ip.ExpiresAt.Format(time.RFC3339))
		tw.Flush()
		fmt.Fprintf(stdout, "\n%s\n", strings.TrimRight(ip.PublicKey, "\n"))
		return nil
	}
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(stdout, k)
	}
	printKeys(stdout, []client.Key{k})
	printKeyVersions(stdout, k)
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

func kmsCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if groupHelp(args, kmsUsage, stdout) {
		return nil
	}
	sub, fs, cf, err := subcommand("kms", kmsUsage, args)
	if err != nil {
		return err
	}
	if sub != "encrypt" && sub != "decrypt" {
		return fmt.Errorf("%w: unknown kms command %q\n%s", errUsage, sub, kmsUsage)
	}
	withUsage(fs, kmsUsage)
	ec := contextFlag{}
	fs.Var(ec, "context", "a pair k=v of the encryption context (repeatable; tenant_id=<tenant> is required)")
	var keyID, text, file string
	if sub == "encrypt" {
		fs.StringVar(&keyID, "key", "", "the key id or alias to encrypt under, e.g. alias/customer-<tenant> (required)")
		fs.StringVar(&text, "plaintext", "", "the text to encrypt")
		fs.StringVar(&file, "file", "", "read the bytes to encrypt from a file (- for stdin)")
	} else {
		fs.StringVar(&text, "ciphertext", "", "the ciphertext, in base64, as encrypt printed it")
		fs.StringVar(&file, "file", "", "read the base64 ciphertext from a file (- for stdin)")
	}
	if _, err := parseArgs(fs, args[1:], 0, stderr); err != nil {
		return err
	}
	what := map[string]string{"encrypt": "--plaintext TEXT", "decrypt": "--ciphertext BASE64"}[sub]
	switch {
	case sub == "encrypt" && keyID == "":
		return fmt.Errorf("%w: encrypt needs --key KEY (a key id or alias, e.g. alias/customer-<tenant>)", errUsage)
	case text != "" && file != "":
		return fmt.Errorf("%w: %s and --file exclude each other", errUsage, strings.Fields(what)[0])
	case text == "" && file == "":
		return fmt.Errorf("%w: %s needs %s or --file PATH (- for stdin)", errUsage, sub, what)
	case !hasKey(ec, "tenant_id"):
		return fmt.Errorf("%w: the encryption context must hold the caller's tenant: --context tenant_id=<tenant>", errUsage)
	}
	data := []byte(text)
	if file != "" {
		if data, err = readSource(file, stdin); err != nil {
			return err
		}
	}
	defer clear(data)
	if sub == "decrypt" {
		b64 := strings.Join(strings.Fields(string(data)), "")
		ct, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(ct) == 0 {
			return fmt.Errorf("%w: the ciphertext is not base64 (as kms encrypt prints it)", errUsage)
		}
		data = ct
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if sub == "encrypt" {
		out, err := c.Encrypt(ctx, keyID, data, ec)
		if err != nil {
			return kmsHint(err)
		}
		if cf.output == "json" {
			return printJSON(stdout, out)
		}
		_, err = fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(out.Ciphertext))
		return err
	}
	out, err := c.Decrypt(ctx, data, ec)
	if err != nil {
		return kmsHint(err)
	}
	defer clear(out.Plaintext)
	if cf.output == "json" {
		return printJSON(stdout, out)
	}
	_, err = stdout.Write(out.Plaintext)
	return err
}
