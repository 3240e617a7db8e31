package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const functionUsage = `Usage:
  bulkhead function create NAME --module FILE.wasm [--mode per_tenant|shared] [--memory-mib N] [--timeout 10s]
                           [--max-environments-per-tenant N] [--idle-ttl 10m]
  bulkhead function list
  bulkhead function invoke NAME [--tenant T] [--event JSON|@FILE]
  bulkhead function delete NAME
create publishes a WebAssembly module (a new version when NAME exists; the mode is fixed at creation).
invoke prints the function's answer; the operator names the tenant with --tenant (a tenant
credential runs the function for its own tenant).
Common flags: --addr, --token, --output json|table`

func functionCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if groupHelp(args, functionUsage, stdout) {
		return nil
	}
	sub, fs, cf, err := subcommand("function", functionUsage, args)
	if err != nil {
		return err
	}
	withUsage(fs, functionUsage)
	positional, ok := map[string]int{"create": 1, "list": 0, "invoke": 1, "delete": 1}[sub]
	if !ok {
		return fmt.Errorf("%w: unknown function command %q\n%s", errUsage, sub, functionUsage)
	}
	var cfg client.FunctionConfig
	var module, tenantID, event string
	switch sub {
	case "create":
		fs.StringVar(&module, "module", "", "the WebAssembly module (wasip1 reactor exporting bulkhead_alloc and bulkhead_handle)")
		fs.StringVar(&cfg.TenancyMode, "mode", "per_tenant", "per_tenant (environments serve one tenant) or shared")
		fs.IntVar(&cfg.MemoryMiB, "memory-mib", 0, "memory limit in MiB (default 128)")
		fs.IntVar(&cfg.TmpMiB, "tmp-mib", 0, "the /tmp quota per environment in MiB (default 16)")
		fs.StringVar(&cfg.Timeout, "timeout", "", "wall-clock limit per invocation (default 10s)")
		fs.IntVar(&cfg.MaxEnvsPerTenant, "max-environments-per-tenant", 0, "concurrent environments per tenant (default 10)")
		fs.StringVar(&cfg.IdleTTL, "idle-ttl", "", "idle environments are destroyed after this (default 10m)")
	case "invoke":
		fs.StringVar(&tenantID, "tenant", "", "the tenant to run for (the operator must name one for per_tenant functions)")
		fs.StringVar(&event, "event", "{}", "the event: JSON, or @FILE")
	}
	pos, err := parseArgs(fs, args[1:], positional, stderr)
	if err != nil {
		return err
	}
	if sub == "create" && module == "" {
		return fmt.Errorf("%w: function create needs --module FILE.wasm", errUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		b, err := os.ReadFile(module)
		if err != nil {
			return fmt.Errorf("read module: %w", err)
		}
		cfg.Name = pos[0]
		fn, err := c.PublishFunction(ctx, cfg, b)
		if err != nil {
			return err
		}
		if cf.output == "json" {
			return printJSON(stdout, fn)
		}
		printFunctions(stdout, []client.Function{fn})
	case "list":
		fns, err := c.ListFunctions(ctx)
		if err != nil {
			return err
		}
		if cf.output == "json" {
			return printJSON(stdout, map[string]any{"items": fns})
		}
		printFunctions(stdout, fns)
	case "invoke":
		ev := []byte(event)
		if len(event) > 0 && event[0] == '@' {
			if ev, err = os.ReadFile(event[1:]); err != nil {
				return fmt.Errorf("read event: %w", err)
			}
		}
		res, err := c.InvokeFunction(ctx, pos[0], tenantID, ev)
		if err != nil {
			return err
		}
		stdout.Write(res.Body)
		fmt.Fprintln(stdout)
	case "delete":
		if err := c.DeleteFunction(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "function %s deleted\n", pos[0])
	}
	return nil
}

func printFunctions(w io.Writer, fns []client.Function) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tMODE\tDIGEST\tUPDATED")
	for _, f := range fns {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.12s\t%s\n", f.Name, f.Version, f.TenancyMode, f.Digest, f.UpdatedAt.Format("2006-01-02T15:04:05Z"))
	}
	tw.Flush()
}
