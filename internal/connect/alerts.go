package connect

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/hooksig"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/page"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Alert is an anomaly of a grant's traffic.
type Alert struct {
	ID           string            `json:"id"`
	TenantID     tenant.ID         `json:"tenant_id"`
	ConnectionID string            `json:"connection_id"`
	GrantID      string            `json:"grant_id"`
	Kind         string            `json:"kind"`
	Detail       map[string]string `json:"detail"`
	Suspended    bool              `json:"grant_suspended"` // the alert suspended the grant (auto_suspend)
	CreatedAt    time.Time         `json:"created_at"`
}

// anomalyActor is the principal of acts the detector takes.
var anomalyActor = tenant.Actor{Principal: "system:anomaly-detector"}

// raise records findings as alerts and, for a grant set to auto-suspend,
// suspends it in the same transaction. It reports whether the grant is now
// suspended. Webhooks are sent after the commit, by Run.
func (s *Service) raise(ctx context.Context, g *grantState, fs []finding, rec *record) (bool, error) {
	now := s.now()
	var alerts []Alert
	suspended := false
	actor := anomalyActor
	actor.RequestID, actor.SourceIP = rec.requestID, rec.sourceIP
	err := s.inval.Write(ctx, g.tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		alerts, suspended = nil, false
		cur, err := readGrant(ctx, tx, g.grant.ConnectionID, g.grant.ID)
		if err != nil {
			return inval.Change{}, err
		}
		suspend := cur.AutoSuspend && cur.Status == GrantActive
		kinds := make([]string, 0, len(fs))
		for _, f := range fs {
			d := f.detail()
			if f.kind == AlertNewNetwork {
				d = map[string]string{"network": network(rec.sourceIP), "source_ip": rec.sourceIP}
			}
			d["path"], d["method"] = rec.path, rec.method
			a := Alert{ID: ids.New(alertPrefix), TenantID: g.tid, ConnectionID: g.grant.ConnectionID, GrantID: g.grant.ID, Kind: f.kind,
				Detail: d, Suspended: suspend, CreatedAt: now}
			dj, _ := json.Marshal(d)
			if _, err := tx.Exec(ctx, `INSERT INTO connect_alerts (tenant_id, id, connection_id, grant_id, kind, detail, suspended, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, tx.TenantID(), a.ID, a.ConnectionID, a.GrantID, a.Kind, string(dj), boolInt(suspend), now.UnixMicro()); err != nil {
				return inval.Change{}, fmt.Errorf("connect: insert alert: %w", err)
			}
			alerts = append(alerts, a)
			kinds = append(kinds, f.kind)
		}
		detail := map[string]string{"connection": g.grant.ConnectionID, "kinds": strings.Join(kinds, ","), "alert": alerts[0].ID}
		if suspend {
			if _, err := s.setStatus(ctx, tx, g.grant.ConnectionID, g.grant.ID, true, "alert: "+strings.Join(kinds, ",")); err != nil {
				return inval.Change{}, err
			}
			suspended = true
			detail["grant_suspended"] = "true"
		}
		return inval.Change{Action: "connection.alert", Target: g.grant.ID, Detail: detail}, nil
	})
	if err != nil {
		return false, err
	}
	s.log.WarnContext(ctx, "connect: anomaly alert", "tenant_id", g.tid, "connection", g.grant.ConnectionID, "grant", g.grant.ID,
		"kinds", len(alerts), "grant_suspended", suspended)
	if g.conn.Alerts.WebhookURL != "" && g.conn.webhookSecret != "" {
		for _, a := range alerts {
			s.queueWebhook(ctx, webhook{tid: g.tid, conn: g.conn, alert: a})
		}
	}
	return suspended, nil
}

// learnNetwork records a source network of a grant; it reports whether the
// network is new (another request may have recorded it meanwhile).
func (s *Service) learnNetwork(ctx context.Context, g *grantState, n string) (bool, error) {
	learned := false
	err := s.db.Update(ctx, storage.TenantScope(g.tid), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `INSERT INTO connect_networks (tenant_id, grant_id, network, first_seen) VALUES (?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, tx.TenantID(), g.grant.ID, n, s.now().UnixMicro())
		if err != nil {
			return fmt.Errorf("connect: record network: %w", err)
		}
		rows, _ := res.RowsAffected()
		learned = rows == 1
		if learned {
			return s.inval.Changed(ctx, tx, string(g.tid))
		}
		return nil
	})
	return learned, err
}

// AlertPage is a page of alerts, newest first.
type AlertPage struct {
	Items      []Alert `json:"items"`
	NextCursor string  `json:"next_cursor"`
}

// ListAlerts returns tenant tid's alerts, newest first, of one connection
// when connID is set.
func (s *Service) ListAlerts(ctx context.Context, tid tenant.ID, connID string, limit int, cursor string) (AlertPage, error) {
	limit, after, err := page.Bounds(limit, cursor)
	if err != nil {
		return AlertPage{}, err
	}
	// The cursor is "<created_at µs>-<id>" of the last alert of a page.
	beforeT, beforeID := int64(1<<62), ""
	if after != "" {
		t, id, ok := strings.Cut(after, "-")
		v, perr := strconv.ParseInt(t, 10, 64)
		if !ok || perr != nil || !ids.Valid(id, alertPrefix) {
			return AlertPage{}, errs.Field("cursor", "invalid_cursor", "cursor is not one this server issued")
		}
		beforeT, beforeID = v, id
	}
	out := AlertPage{Items: []Alert{}}
	err = s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		q := `SELECT id, connection_id, grant_id, kind, detail, suspended, created_at FROM connect_alerts
			WHERE tenant_id = ? AND (created_at < ? OR (created_at = ? AND id < ?))`
		args := []any{tx.TenantID(), beforeT, beforeT, beforeID}
		if connID != "" {
			if _, err := readConn(ctx, tx, connID, false); err != nil {
				return err
			}
			q += ` AND connection_id = ?`
			args = append(args, connID)
		}
		q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
		rows, err := tx.Query(ctx, q, append(args, limit+1)...)
		if err != nil {
			return fmt.Errorf("connect: list alerts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var a Alert
			var d string
			var susp int
			var created int64
			if err := rows.Scan(&a.ID, &a.ConnectionID, &a.GrantID, &a.Kind, &d, &susp, &created); err != nil {
				return fmt.Errorf("connect: list alerts: %w", err)
			}
			a.TenantID, a.Suspended, a.CreatedAt = tid, susp != 0, time.UnixMicro(created).UTC()
			if err := json.Unmarshal([]byte(d), &a.Detail); err != nil {
				return fmt.Errorf("connect: stored alert detail: %w", err)
			}
			out.Items = append(out.Items, a)
		}
		return rows.Err()
	})
	if err != nil {
		return AlertPage{}, err
	}
	out.Items, out.NextCursor = page.Trim(out.Items, limit, func(a Alert) string {
		return strconv.FormatInt(a.CreatedAt.UnixMicro(), 10) + "-" + a.ID
	})
	return out, nil
}

// ---- webhooks ----

// newWebhookSecret makes a webhook signing secret: its text (shown once)
// and its KMS ciphertext under the tenant's key.
func (s *Service) newWebhookSecret(ctx context.Context, tid tenant.ID, connID string) (string, string, error) {
	secret := ids.Secret("whsec")
	ct, err := s.kms.Seal(ctx, tid, []byte(secret), webhookContext(tid, connID))
	if err != nil {
		return "", "", fmt.Errorf("connect: seal webhook secret: %w", err)
	}
	return secret, base64.StdEncoding.EncodeToString(ct), nil
}

// webhook is an alert to deliver to its connection's webhook.
type webhook struct {
	tid   tenant.ID
	conn  connRow
	alert Alert
}

// webhookQueue bounds the alerts waiting for Run to deliver them.
const webhookQueue = 1024

// queueWebhook hands w to Run without waiting: the request that raised the
// alert does not wait for its delivery. A full queue drops it (delivery is
// best effort; the alert itself is stored and listed either way).
func (s *Service) queueWebhook(ctx context.Context, w webhook) {
	select {
	case s.webhooks <- w:
	default:
		s.log.WarnContext(ctx, "connect: alert webhook not delivered: too many queued", "tenant_id", w.tid,
			"connection", w.conn.ID, "alert", w.alert.ID)
	}
}

// deliverWebhooks delivers each queued alert, concurrently, until ctx
// ends; it returns once every delivery it started has.
func (s *Service) deliverWebhooks(ctx context.Context) {
	var deliveries sync.WaitGroup
	defer deliveries.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-s.webhooks:
			deliveries.Go(func() { s.deliver(ctx, w.tid, w.conn, w.alert) })
		}
	}
}

// deliver posts an alert to the connection's webhook: JSON
// {"type":"connection.alert","alert":{…}}, signed, up to three attempts,
// until ctx ends. Delivery is best effort (not durable across a restart);
// the alert itself is stored and listed either way.
func (s *Service) deliver(ctx context.Context, tid tenant.ID, c connRow, a Alert) {
	ct, err := base64.StdEncoding.DecodeString(c.webhookSecret)
	if err != nil {
		return
	}
	secret, err := s.kms.Open(ctx, tid, ct, webhookContext(tid, c.ID))
	if err != nil {
		s.log.WarnContext(ctx, "connect: webhook secret does not open", "tenant_id", tid, "connection", c.ID, "err", err)
		return
	}
	defer clear(secret)
	body, _ := json.Marshal(map[string]any{"type": "connection.alert", "id": ids.New("evt"), "alert": a})
	client := s.webhookClient()
	for attempt := range 3 {
		if attempt > 0 {
			t, wait := s.clock.NewTimer(time.Duration(attempt) * time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-wait:
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Alerts.WebhookURL, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "Bulkhead-Webhook/1")
		req.Header.Set(hooksig.Header, hooksig.Sign(secret, s.clock.Now(), body))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return
			}
		}
	}
	s.log.WarnContext(ctx, "connect: alert webhook not delivered", "tenant_id", tid, "connection", c.ID, "alert", a.ID)
}

// webhookClient reaches only public addresses unless private upstreams
// are allowed, and follows no redirect.
func (s *Service) webhookClient() *http.Client {
	d := s.opts.dialer(5 * time.Second)
	return &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{DialContext: d.DialContext, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func webhookContext(tid tenant.ID, connID string) kms.Context {
	return kms.Context{"tenant_id": string(tid), "connection_id": connID, "purpose": "connect.webhook_secret"}
}

// network is the source network of an address: its /24 (IPv4) or /48 (IPv6).
func network(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p.String()
}
