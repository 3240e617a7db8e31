package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const schemaUsage = `Usage:
  bulkhead policy schema get --tenant T
  bulkhead policy schema put --tenant T --file PATH [--format cedar|json]
get prints the schema as it was put (Cedar schema text, or the JSON schema);
--output json prints the API's {"format","schema","updated_at"} instead.
put reads PATH (- for stdin); without --format, text that starts with { is
json, anything else cedar. A schema that a policy, template or link of the
store does not conform to is refused, and nothing changes.
Common flags: --addr, --token, --output json|table`

const storeUsage = `Usage:
  bulkhead policy store get --tenant T
  bulkhead policy store update --tenant T [--log-allows true|false] [--principal-type TYPE] [--group-type TYPE]
--log-allows true audits allow decisions too (denies always are).
--principal-type and --group-type are the entity types of the caller and of
their groups when a user's token calls authorize without a principal.
Common flags: --addr, --token, --output json|table`

// storeVerb begins a verb of a tenant's policy store (its schema, its
// settings): its flag set with --tenant.
func storeVerb(path, usage string) (*flag.FlagSet, *clientFlags, *storeFlags) {
	fs, cf := clientFlagSet(path, usage)
	sf := &storeFlags{}
	sf.register(fs, false)
	return fs, cf, sf
}

// schemaInput is the body of a schema put from the text read and --format.
func schemaInput(text []byte, format string) (client.PolicySchema, error) {
	text = bytes.TrimSpace(text)
	if format == "" {
		format = client.SchemaFormatCedar
		if bytes.HasPrefix(text, []byte("{")) {
			format = client.SchemaFormatJSON
		}
	}
	switch format {
	case client.SchemaFormatCedar:
		return client.CedarSchema(string(text)), nil
	case client.SchemaFormatJSON:
		if !json.Valid(text) {
			return client.PolicySchema{}, fmt.Errorf("%w: the schema is not valid JSON (for Cedar schema text, --format cedar)", errUsage)
		}
		return client.PolicySchema{Format: format, Schema: text}, nil
	}
	return client.PolicySchema{}, fmt.Errorf("%w: --format must be cedar or json", errUsage)
}

// schemaGet runs bulkhead policy schema get: the schema as it was put.
func schemaGet(ctx context.Context, s stdio, args []string) error {
	fs, cf, sf := storeVerb("policy schema get", schemaUsage)
	_, c, err := cf.open(fs, args, 0, s.err, sf)
	if err != nil {
		return err
	}
	sch, err := c.GetSchema(ctx, sf.tenant)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, sch)
	}
	text := sch.Text()
	var b bytes.Buffer
	if sch.Format == client.SchemaFormatJSON && json.Indent(&b, []byte(text), "", "  ") == nil {
		text = b.String()
	}
	fmt.Fprintln(s.out, strings.TrimRight(text, "\n"))
	return nil
}

// schemaPut runs bulkhead policy schema put.
func schemaPut(ctx context.Context, s stdio, args []string) error {
	fs, cf, sf := storeVerb("policy schema put", schemaUsage)
	var file, format string
	fs.StringVar(&file, "file", "", "read the schema from a file (- for stdin)")
	fs.StringVar(&format, "format", "", "cedar or json (default: json when the text starts with {, else cedar)")
	if _, err := parseArgs(fs, args, 0, s.err, sf); err != nil {
		return err
	}
	if file == "" {
		return fmt.Errorf("%w: schema put needs --file PATH (- for stdin)", errUsage)
	}
	text, err := readSource(file, s.in)
	if err != nil {
		return err
	}
	sch, err := schemaInput(text, format)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if sch, err = c.PutSchema(ctx, sf.tenant, sch); err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, sch)
	}
	fmt.Fprintf(s.out, "schema of %s set (format %s)\n", sf.tenant, sch.Format)
	return nil
}

// storeGet runs bulkhead policy store get: the store's settings.
func storeGet(ctx context.Context, s stdio, args []string) error {
	fs, cf, sf := storeVerb("policy store get", storeUsage)
	_, c, err := cf.open(fs, args, 0, s.err, sf)
	if err != nil {
		return err
	}
	st, err := c.GetPolicyStore(ctx, sf.tenant)
	if err != nil {
		return err
	}
	return printStore(s.out, cf.output, st)
}

// storeUpdate runs bulkhead policy store update: it sends only the
// settings given.
func storeUpdate(ctx context.Context, s stdio, args []string) error {
	fs, cf, sf := storeVerb("policy store update", storeUsage)
	var logAllows, principalType, groupType string
	fs.StringVar(&logAllows, "log-allows", "", "true to audit allow decisions too, false for denies only")
	fs.StringVar(&principalType, "principal-type", "", "the entity type of a user calling authorize without a principal")
	fs.StringVar(&groupType, "group-type", "", "the entity type of that user's groups")
	if _, err := parseArgs(fs, args, 0, s.err, sf); err != nil {
		return err
	}
	var u client.PolicyStoreUpdate
	var parseErr error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "log-allows":
			b, err := strconv.ParseBool(logAllows)
			if err != nil {
				parseErr = fmt.Errorf("%w: --log-allows is true or false", errUsage)
			}
			u.LogAllows = &b
		case "principal-type":
			u.PrincipalType = &principalType
		case "group-type":
			u.GroupType = &groupType
		}
	})
	if parseErr != nil {
		return parseErr
	}
	if u == (client.PolicyStoreUpdate{}) {
		return fmt.Errorf("%w: store update needs --log-allows, --principal-type or --group-type", errUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	st, err := c.UpdatePolicyStore(ctx, sf.tenant, u)
	if err != nil {
		return err
	}
	return printStore(s.out, cf.output, st)
}

func printStore(w io.Writer, output string, st client.PolicyStore) error {
	if output == "json" {
		return printJSON(w, st)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tHAS_SCHEMA\tLOG_ALLOWS\tPRINCIPAL_TYPE\tGROUP_TYPE\tUPDATED")
	fmt.Fprintf(tw, "%s\t%v\t%v\t%s\t%s\t%s\n", st.TenantID, st.HasSchema, st.LogAllows, st.PrincipalType, st.GroupType, st.UpdatedAt.Format(time.RFC3339))
	return tw.Flush()
}
