package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
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

// functionCreate runs bulkhead function create: a module published, a new
// version when the function exists.
func functionCreate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("function create", functionUsage)
	var cfg client.FunctionConfig
	var module string
	fs.StringVar(&module, "module", "", "the WebAssembly module (wasip1 reactor exporting bulkhead_alloc and bulkhead_handle)")
	fs.StringVar(&cfg.TenancyMode, "mode", "per_tenant", "per_tenant (environments serve one tenant) or shared")
	fs.IntVar(&cfg.MemoryMiB, "memory-mib", 0, "memory limit in MiB (default 128)")
	fs.IntVar(&cfg.TmpMiB, "tmp-mib", 0, "the /tmp quota per environment in MiB (default 16)")
	fs.StringVar(&cfg.Timeout, "timeout", "", "wall-clock limit per invocation (default 10s)")
	fs.IntVar(&cfg.MaxEnvsPerTenant, "max-environments-per-tenant", 0, "concurrent environments per tenant (default 10)")
	fs.StringVar(&cfg.IdleTTL, "idle-ttl", "", "idle environments are destroyed after this (default 10m)")
	pos, err := parseArgs(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if module == "" {
		return fmt.Errorf("%w: function create needs --module FILE.wasm", errUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
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
		return printJSON(s.out, fn)
	}
	printFunctions(s.out, []client.Function{fn})
	return nil
}

func functionList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("function list", functionUsage)
	_, c, err := cf.open(fs, args, 0, s.err)
	if err != nil {
		return err
	}
	fns, err := c.ListFunctions(ctx)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, map[string]any{"items": fns})
	}
	printFunctions(s.out, fns)
	return nil
}

// functionInvoke runs bulkhead function invoke: the function's answer, as
// it is.
func functionInvoke(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("function invoke", functionUsage)
	var tenantID, event string
	fs.StringVar(&tenantID, "tenant", "", "the tenant to run for (the operator must name one for per_tenant functions)")
	fs.StringVar(&event, "event", "{}", "the event: JSON, or @FILE")
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	ev := []byte(event)
	if path, ok := strings.CutPrefix(event, "@"); ok {
		if ev, err = os.ReadFile(path); err != nil {
			return fmt.Errorf("read event: %w", err)
		}
	}
	res, err := c.InvokeFunction(ctx, pos[0], tenantID, ev)
	if err != nil {
		return err
	}
	s.out.Write(res.Body)
	fmt.Fprintln(s.out)
	return nil
}

func functionDelete(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("function delete", functionUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if err := c.DeleteFunction(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "function %s deleted\n", pos[0])
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
