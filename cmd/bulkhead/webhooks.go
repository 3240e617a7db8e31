package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const webhookUsage = `Usage:
  bulkhead webhook create --url URL --event TYPE...
  bulkhead webhook list
  bulkhead webhook get ID
  bulkhead webhook delete ID
  bulkhead webhook deliveries ID
The operator's webhooks of Bulkhead's own events (tenant.*, kms.key_rotated, …): each delivery
is signed (Bulkhead-Signature) with the secret create prints, once.
Common flags: --addr, --token, --output json|table`

// webhookCreate runs bulkhead webhook create; the secret is printed once.
func webhookCreate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("webhook create", webhookUsage)
	url := fs.String("url", "", "the endpoint (https) the events are posted to (required)")
	var events stringList
	fs.Var(&events, "event", "an event type or pattern such as tenant.* (repeatable, at least one)")
	_, c, err := cf.open(fs, args, 0, s.err)
	if err != nil {
		return err
	}
	if *url == "" || len(events) == 0 {
		return fmt.Errorf("%w: webhook create needs --url and at least one --event", errUsage)
	}
	w, err := c.CreateWebhook(ctx, client.CreateWebhook{URL: *url, Events: events})
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, w)
	}
	printWebhooks(s.out, []client.Webhook{w.Webhook})
	fmt.Fprintf(s.out, "secret: %s (shown once: it signs every delivery)\n", w.Secret)
	return nil
}

// webhookList runs bulkhead webhook list.
func webhookList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("webhook list", webhookUsage)
	var lf listFlags
	lf.register(fs)
	_, c, err := cf.open(fs, args, 0, s.err)
	if err != nil {
		return err
	}
	page, err := c.ListWebhooks(ctx, lf.limit, lf.cursor)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, page)
	}
	printWebhooks(s.out, page.Items)
	printMore(s.out, page.NextCursor)
	return nil
}

// webhookGet runs bulkhead webhook get ID.
func webhookGet(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("webhook get", webhookUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	w, err := c.GetWebhook(ctx, pos[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, w)
	}
	printWebhooks(s.out, []client.Webhook{w})
	return nil
}

// webhookDelete runs bulkhead webhook delete ID.
func webhookDelete(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("webhook delete", webhookUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if err := c.DeleteWebhook(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "deleted %s\n", pos[0])
	return nil
}

// webhookDeliveries runs bulkhead webhook deliveries ID: its delivery log.
func webhookDeliveries(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("webhook deliveries", webhookUsage)
	var lf listFlags
	lf.register(fs)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	page, err := c.WebhookDeliveries(ctx, pos[0], lf.limit, lf.cursor)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, page)
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tTYPE\tSTATUS\tATTEMPTS\tLAST\tAT")
	for _, d := range page.Items {
		last := orDash(d.LastError)
		if d.LastStatusCode != 0 {
			last = strconv.Itoa(d.LastStatusCode)
		}
		at := d.DeliveredAt
		if at.IsZero() {
			at = d.NextAttemptAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.EventID, d.Type, d.Status, d.Attempts, last, stamp(at))
	}
	tw.Flush()
	printMore(s.out, page.NextCursor)
	return nil
}

func printWebhooks(w io.Writer, ws []client.Webhook) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tURL\tEVENTS\tCREATED")
	for _, h := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.ID, h.URL, strings.Join(h.Events, ","), stamp(h.CreatedAt))
	}
	tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
