package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const clusterUsage = `Usage:
  bulkhead cluster add NAME --dsn URL --admin-dsn URL [--prefix P] [--default]
  bulkhead cluster list
  bulkhead cluster remove NAME
  bulkhead cluster migrate NAME --dir DIR [--no-wait] [--timeout 10m]
  bulkhead cluster migrations NAME [--json] [--check]
A cluster is the application's own PostgreSQL, where Bulkhead places each
tenant onboarded afterwards, by its tier: pool in the shared database (rows
keyed by tenant_id under forced row-level security), bridge in a schema of
its own, silo in a database of its own (each with a role of its own).
--dsn is the application's serving role: NOINHERIT, not a superuser,
BYPASSRLS or CREATEROLE, owning nothing. --admin-dsn is the role that
provisions: CREATEDB CREATEROLE, owner of the shared database. Both name the
shared database. They are sealed by Bulkhead and never shown again; give
them in BULKHEAD_CLUSTER_DSN and BULKHEAD_CLUSTER_ADMIN_DSN to keep them
out of shell history. --prefix (default t_) begins every schema, role and
database made for a tenant. The first cluster is the default (where new
tenants go); --default makes this one the default.
remove refuses a cluster that still holds placements.
migrate registers the application's migrations (DIR/*.sql) and waits for
every placement to have them; migrations prints how far each is (see
bulkhead cluster migrate --help).
Common flags: --addr, --token, --output json|table`

const placementUsage = `Usage:
  bulkhead placement TENANT
Prints where a tenant's application data lives: its model (pool, bridge,
silo), cluster, database, schema and role.
Common flags: --addr, --token, --output json|table`

func clusterAdd(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("cluster add", clusterUsage)
	dsn := fs.String("dsn", os.Getenv("BULKHEAD_CLUSTER_DSN"), "the application's serving DSN, postgres://… (env BULKHEAD_CLUSTER_DSN)")
	admin := fs.String("admin-dsn", os.Getenv("BULKHEAD_CLUSTER_ADMIN_DSN"), "the provisioning role's DSN, postgres://… (env BULKHEAD_CLUSTER_ADMIN_DSN)")
	prefix := fs.String("prefix", "", "begins the names made for tenants (default t_)")
	def := fs.Bool("default", false, "place new tenants on this cluster")
	pos, err := parseArgs(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if *dsn == "" || *admin == "" {
		return fmt.Errorf("%w: cluster add needs --dsn and --admin-dsn (or BULKHEAD_CLUSTER_DSN and BULKHEAD_CLUSTER_ADMIN_DSN)", errUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	cl, err := c.CreateCluster(ctx, client.CreateDataCluster{Name: pos[0], DSN: *dsn, AdminDSN: *admin, Prefix: *prefix, Default: *def})
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, cl)
	}
	printClusters(s.out, []client.DataCluster{cl}, "")
	return nil
}

func clusterList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("cluster list", clusterUsage)
	_, c, err := cf.open(fs, args, 0, s.err)
	if err != nil {
		return err
	}
	list, err := c.ListClusters(ctx)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, list)
	}
	printClusters(s.out, list.Clusters, list.Default)
	return nil
}

func clusterRemove(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("cluster remove", clusterUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if err := c.RemoveCluster(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "removed cluster %s\n", pos[0])
	return nil
}

func printClusters(w io.Writer, cs []client.DataCluster, def string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tHOST\tPREFIX\tDEFAULT\tCREATED")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", c.Name, c.Host, c.Prefix, c.Name == def, c.CreatedAt.Format("2006-01-02T15:04:05Z"))
	}
	tw.Flush()
}

func placementGet(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("placement", placementUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	p, err := c.GetPlacement(ctx, pos[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, p)
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tMODEL\tCLUSTER\tDATABASE\tSCHEMA\tROLE\tSTATUS\tVERSION")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", p.TenantID, p.Model, p.Cluster, p.Database, p.Schema, orDash(p.Role), p.Status, p.Version)
	return tw.Flush()
}
