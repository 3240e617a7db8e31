package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/bulkhead-dev/bulkhead/internal/events"
)

// natsConfigCmd is bulkhead nats-config: the files that let Bulkhead's
// nodes serve tenants' event streams on an external NATS server.
type natsConfigCmd struct {
	out            string // the directory the files go to
	tenantAccounts int    // tenant accounts the server's part declares
}

const natsConfigUsage = `Usage: bulkhead nats-config --out DIR [--tenant-accounts N]

Writes what an external NATS server or cluster (nats-server 2.10 or later)
and Bulkhead's nodes need to serve tenants' event streams there
(serve --nats-url), with fresh random passwords and keys, both files 0600:

  DIR/` + events.ServerConfigFile + `              the NATS server's part: the accounts AUTH,
                                     TENANTS (JetStream) and
                                     SYS, and the auth callout to Bulkhead; its
                                     passwords as bcrypt hashes, its keys public
  DIR/` + events.CredentialsFile + `  Bulkhead's part: its users' passwords and
                                     the seeds of the keys it signs and decrypts
                                     the callout with

On every NATS server, copy the first beside the server's configuration and
add to that file:

  include ` + events.ServerConfigFile + `
  jetstream { store_dir: /var/lib/nats }

On every Bulkhead node, give the second (mode 0600, owned by Bulkhead's
user) to serve:

  bulkhead serve --nats-url nats://nats-1:4222,nats://nats-2:4222 \
                 --nats-credentials /etc/bulkhead/` + events.CredentialsFile + `

Existing files are not replaced: run it again with another DIR to rotate.

Flags:
`

func parseNATSConfigFlags(args []string, stderr io.Writer) (natsConfigCmd, error) {
	var c natsConfigCmd
	fs := flag.NewFlagSet("nats-config", flag.ContinueOnError)
	fs.StringVar(&c.out, "out", "", "the directory to write the two files into (made 0700 if missing)")
	fs.IntVar(&c.tenantAccounts, "tenant-accounts", events.DefaultTenantAccounts,
		"how many tenant accounts the server's part declares: each tenant that connects gets one of its own, for good (a leaving tenant's is free again a day later)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), natsConfigUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return c, err
	}
	if c.out == "" {
		return c, fmt.Errorf("%w: nats-config needs --out DIR", errUsage)
	}
	if c.tenantAccounts < 1 || c.tenantAccounts > events.MaxTenantAccounts {
		return c, fmt.Errorf("%w: --tenant-accounts must be 1 to %d", errUsage, events.MaxTenantAccounts)
	}
	return c, nil
}

// natsConfig runs bulkhead nats-config.
func natsConfig(_ context.Context, s stdio, args []string) error {
	c, err := parseNATSConfigFlags(args, s.err)
	if err != nil {
		return err
	}
	conf, creds, err := events.WriteConfig(c.out, c.tenantAccounts)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "wrote %s (for every NATS server: include it from its configuration)\nwrote %s (for every Bulkhead node: serve --nats-credentials)\n", conf, creds)
	return nil
}
