package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const certsUsage = `Usage:
  bulkhead certs list
  bulkhead certs reissue --from-ca URL
Common flags: --addr, --token, --output json|table`

// certsList runs bulkhead certs list: the gateway's certificates and the
// CA that issued each.
func certsList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("certs list", certsUsage)
	_, c, err := cf.open(fs, args, 0, s.err)
	if err != nil {
		return err
	}
	list, err := c.ListCertificates(ctx)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, list)
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCA\tNOT AFTER\tSERIAL")
	for _, cert := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cert.Name, cert.CA, cert.NotAfter.Format(time.RFC3339), cert.Serial)
	}
	return tw.Flush()
}

// certsReissue runs bulkhead certs reissue: every certificate of a CA
// moved to the next CA in the node's list, one per request, each reported
// as it is done. It stops at the first certificate that cannot be moved.
func certsReissue(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("certs reissue", certsUsage)
	from := fs.String("from-ca", "", "ACME directory URL of the CA whose certificates move to the next CA in the node's list")
	if _, err := parseArgs(fs, args, 0, s.err); err != nil {
		return err
	}
	if *from == "" {
		return fmt.Errorf("%w: certs reissue needs --from-ca", errUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var all []client.ReissuedCertificate
	for done := 0; ; {
		res, err := c.ReissueCertificates(ctx, client.ReissueCertificates{FromCA: *from, Max: 1})
		if err != nil {
			return err
		}
		all = append(all, res.Items...)
		for _, it := range res.Items {
			if it.Error != "" {
				fmt.Fprintf(s.err, "%s: %s\n", it.Name, it.Error)
				return errSilent
			}
			done++
			if cf.output != "json" {
				fmt.Fprintf(s.out, "[%d/%d] %s moved\n", done, done+res.Remaining, it.Name)
			}
		}
		if res.Remaining == 0 || len(res.Items) == 0 {
			break
		}
	}
	if cf.output == "json" {
		return printJSON(s.out, all)
	}
	return nil
}
