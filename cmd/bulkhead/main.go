// Command bulkhead is the tenant isolation layer for multi-tenant SaaS:
// the server (serve, init, migrate) and a client for its API (tenant, audit).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `bulkhead — the tenant isolation layer for multi-tenant SaaS

Usage:
  bulkhead serve [flags]        run the server (see bulkhead serve --help)
  bulkhead init [flags]         create the data directory, root key, database and admin token
  bulkhead migrate [flags]      migrate the database as its owner role and grant the serving role
                                (PostgreSQL; see bulkhead migrate --help)
  bulkhead version              print the version
  bulkhead tenant <command>     create|get|list|update|suspend|resume|delete tenants
  bulkhead audit <command>      list|verify the audit trail
  bulkhead user <command>       create|get|list|update|delete a tenant's users
  bulkhead group <command>      create|list|add-member|remove-member a tenant's groups
  bulkhead client <command>     create|list|delete OAuth clients (a tenant's, or platform-wide)
  bulkhead policy <command>     list|get|create|link|replace|delete Cedar policies (a tenant's, or --global);
                                template|schema|store commands (see bulkhead policy --help)
  bulkhead authorize [flags]    ask a tenant's policies for a decision (see bulkhead authorize --help)
  bulkhead key <command>        create|list|get|rotate|schedule-deletion|cancel-deletion|import-params|import
                                a tenant's KMS keys (see bulkhead key --help)
  bulkhead kms <command>        encrypt|decrypt with a tenant's key, with a tenant credential (see bulkhead kms --help)
  bulkhead function <command>   create|list|invoke|delete WebAssembly functions (see bulkhead function --help)
  bulkhead connection <command> create|list|get|update|delete|grant|activity|alerts a tenant's connections to
                                third-party APIs, split tokens and grants (see bulkhead connection --help)

Client commands talk to a running server: BULKHEAD_ADDR (default
http://127.0.0.1:8080) and BULKHEAD_TOKEN (falls back to BULKHEAD_ADMIN_TOKEN),
or --addr and --token. --output json|table chooses the output format.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage marks an error in how the command was called (exit status 2).
var errUsage = errors.New("usage")

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "init":
		err = initCmd(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "bulkhead", version)
	case "tenant":
		err = tenantCmd(ctx, args[1:], stdout, stderr)
	case "audit":
		err = auditCmd(ctx, args[1:], stdout, stderr)
	case "user":
		err = userCmd(ctx, args[1:], stdin, stdout, stderr)
	case "group":
		err = groupCmd(ctx, args[1:], stdout, stderr)
	case "client":
		err = clientCmd(ctx, args[1:], stdout, stderr)
	case "policy":
		err = policyCmd(ctx, args[1:], stdin, stdout, stderr)
	case "authorize":
		if err = authorizeCmd(ctx, args[1:], stdin, stdout, stderr); errors.Is(err, errDenied) {
			return 3 // --exit-code and a deny
		}
	case "key":
		err = keyCmd(ctx, args[1:], stdin, stdout, stderr)
	case "kms":
		err = kmsCmd(ctx, args[1:], stdin, stdout, stderr)
	case "function":
		err = functionCmd(ctx, args[1:], stdout, stderr)
	case "connection":
		err = connectionCmd(ctx, args[1:], stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "bulkhead: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil, errors.Is(err, errSilentOK):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "bulkhead:", err)
		return 2
	case errors.Is(err, errSilent):
		return 1
	default:
		fmt.Fprintln(stderr, "bulkhead:", err)
		return 1
	}
}

// errSilent is returned when the command already explained its failure.
var errSilent = errors.New("failed")
