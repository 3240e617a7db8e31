package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const routeUsage = `Usage:
  bulkhead route add ID --host HOST --upstream URL [--path-prefix /] [--silo TENANT=URL]... [--timeout 30s]
  bulkhead route list
  bulkhead route remove ID
A route of the edge gateway sends requests for HOST under the path prefix
(the longest matching prefix wins) to the upstream; a tenant named with
--silo goes to its own upstream instead while its data is placed as a silo.
HOST is an exact host, *.{app domain} (every tenant's subdomain, see serve
--gateway-app-domain) or * (tenants' custom domains). add replaces a route
of the same id. Routes from the routes file (serve --gateway-routes) are
listed with source "file" and are changed in the file only. Every node
serves a change at once.
Common flags: --addr, --token, --output json|table`

// siloFlag collects --silo TENANT=URL.
type siloFlag map[string]string

func (f siloFlag) String() string { return "" }

func (f siloFlag) Set(v string) error {
	id, u, ok := strings.Cut(v, "=")
	if !ok || id == "" || u == "" {
		return fmt.Errorf("want TENANT=URL")
	}
	f[id] = u
	return nil
}

func routeAdd(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("route add", routeUsage)
	host := fs.String("host", "", "exact host, *.{app domain} or *")
	upstream := fs.String("upstream", "", "upstream URL of pool and bridge tenants")
	prefix := fs.String("path-prefix", "/", "path prefix the route serves")
	timeout := fs.String("timeout", "", "wait for the upstream's response headers (default 30s)")
	silo := siloFlag{}
	fs.Var(silo, "silo", "TENANT=URL: a silo tenant's own upstream (repeatable)")
	pos, err := parseArgs(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if *host == "" || *upstream == "" {
		return fmt.Errorf("%w: route add needs --host and --upstream", errUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	in := client.PutGatewayRoute{Host: *host, PathPrefix: *prefix, Upstream: *upstream, Timeout: *timeout}
	if len(silo) > 0 {
		in.Silo = silo
	}
	r, err := c.PutGatewayRoute(ctx, pos[0], in)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, r)
	}
	printRoutes(s.out, []client.GatewayRoute{r})
	return nil
}

func routeList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("route list", routeUsage)
	_, c, err := cf.open(fs, args, 0, s.err)
	if err != nil {
		return err
	}
	list, err := c.ListGatewayRoutes(ctx)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, list)
	}
	printRoutes(s.out, list.Routes)
	return nil
}

func routeRemove(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("route remove", routeUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if err := c.DeleteGatewayRoute(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "removed route %s\n", pos[0])
	return nil
}

func printRoutes(w io.Writer, rs []client.GatewayRoute) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOST\tPATH\tUPSTREAM\tSILO\tTIMEOUT\tSOURCE")
	for _, r := range rs {
		var silo []string
		for id, u := range r.Silo {
			silo = append(silo, id+"="+u)
		}
		slices.Sort(silo)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Host, r.PathPrefix, r.Upstream, strings.Join(silo, ","), r.Timeout, r.Source)
	}
	tw.Flush()
}
