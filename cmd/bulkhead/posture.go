package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const postureUsage = `Usage:
  bulkhead posture [--tenant T|-] [--severity critical|high|medium|low] [--resolved] [--scan] [--exit-code]
The deployment's posture findings: risky settings such as tenant admins without a second factor,
policies that permit everything, keys overdue for rotation, a serving database role that can get
around row-level security. --scan runs a scan first (operator; scans also run every 6 hours).
--tenant T shows a tenant's findings (its admins may), - the platform's own. --exit-code exits 3
when an open finding is listed.
Common flags: --addr, --token, --output json|table`

// postureList runs bulkhead posture.
func postureList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("posture", postureUsage)
	var q client.PostureQuery
	var lf listFlags
	lf.register(fs)
	fs.StringVar(&q.Tenant, "tenant", "", "a tenant's findings, or - for the platform's own (default: all)")
	fs.StringVar(&q.Severity, "severity", "", "this severity or worse")
	fs.BoolVar(&q.Resolved, "resolved", false, "the resolved findings instead of the open ones")
	scan := fs.Bool("scan", false, "scan now first")
	exitCode := fs.Bool("exit-code", false, "exit 3 when an open finding is listed")
	_, c, err := cf.open(fs, args, 0, s.err)
	if err != nil {
		return err
	}
	q.Limit, q.Cursor = lf.limit, lf.cursor
	if *scan {
		res, err := c.ScanPosture(ctx)
		if err != nil {
			return err
		}
		if cf.output != "json" {
			fmt.Fprintf(s.out, "scanned %d tenants: %d opened, %d resolved%s\n", res.Tenants, res.Opened, res.Resolved, failedChecks(res.Failed))
		}
	}
	var page client.PosturePage
	if q.Tenant != "" && q.Tenant != "-" {
		page, err = c.ListTenantPosture(ctx, q.Tenant, q)
	} else {
		page, err = c.ListPosture(ctx, q)
	}
	if err != nil {
		return err
	}
	if cf.output == "json" {
		if err := printJSON(s.out, page); err != nil {
			return err
		}
	} else {
		printFindings(s.out, page.Items)
		printMore(s.out, page.NextCursor)
	}
	if *exitCode && !q.Resolved && len(page.Items) > 0 {
		return errDenied
	}
	return nil
}

func failedChecks(failed []string) string {
	if len(failed) == 0 {
		return ""
	}
	return " (checks that could not run: " + strings.Join(failed, ", ") + ")"
}

func printFindings(w io.Writer, fs []client.PostureFinding) {
	if len(fs) == 0 {
		fmt.Fprintln(w, "no findings")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEVERITY\tTENANT\tCHECK\tOBJECT\tSINCE")
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Severity, orDash(f.TenantID), f.Check, f.Object, stamp(f.FirstSeen))
	}
	tw.Flush()
	for _, f := range fs {
		fmt.Fprintf(w, "\n%s %s (%s)\n  %s\n  why: %s\n  fix: %s\n", f.Severity, f.Title, f.Object, f.Detail, f.Why, f.Fix)
	}
}
