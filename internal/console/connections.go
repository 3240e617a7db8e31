package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// connectionsView is a tenant's connections.
type connectionsView struct {
	Items []api.Connection
	Next  string
}

func (c *Console) connections(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	page, err := cl.ListConnections(r.Context(), id, 100, r.URL.Query().Get("cursor"))
	if err != nil {
		return "", view{}, err
	}
	return "connections", view{Title: "Connections of " + id, Nav: "connections", Tenant: id,
		Data: connectionsView{Items: page.Items, Next: page.NextCursor}}, nil
}

// connectionView is one connection: its grants, the requests through the
// proxy per hour over the last day, its alerts and its latest activity.
type connectionView struct {
	C        api.Connection
	Grants   []api.Grant
	Hours    []hourBar
	MaxHour  int
	Total    int
	Alerts   []api.Alert
	Activity []api.AuditEvent
}

// hourBar is one hour of the chart, with its bar's geometry in the SVG's
// units (the chart is drawn on the server: no script, no inline style).
type hourBar struct {
	Start    time.Time
	Count    int
	X, Y, H  int
	Label    string
	Accepted int
}

// The chart: 24 bars of 20 units in a 480 × 120 box.
const (
	chartHours  = 24
	chartBar    = 20
	chartHeight = 100
	// activityRead bounds the events read for the chart: the chart of a
	// busier connection says so.
	activityRead = 1000
)

// perHour counts events per hour for the chartHours hours up to now.
func perHour(events []api.AuditEvent, now time.Time) ([]hourBar, int) {
	end := now.Truncate(time.Hour).Add(time.Hour)
	start := end.Add(-chartHours * time.Hour)
	bars := make([]hourBar, chartHours)
	for i := range bars {
		bars[i].Start = start.Add(time.Duration(i) * time.Hour)
	}
	top := 0
	for _, e := range events {
		if e.Time.Before(start) || !e.Time.Before(end) {
			continue
		}
		i := int(e.Time.Sub(start) / time.Hour)
		bars[i].Count++
		if e.Outcome == "success" {
			bars[i].Accepted++
		}
		top = max(top, bars[i].Count)
	}
	for i := range bars {
		b := &bars[i]
		b.X = i * chartBar
		if top > 0 {
			b.H = b.Count * chartHeight / top
		}
		b.Y = chartHeight - b.H
		b.Label = b.Start.UTC().Format("15:04") + " UTC: " + strconv.Itoa(b.Count) + " requests"
	}
	return bars, top
}

func (c *Console) connection(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	cid := r.PathValue("connection")
	con, err := cl.GetConnection(r.Context(), id, cid)
	if err != nil {
		return "", view{}, err
	}
	v := connectionView{C: con}
	if v.Grants, err = cl.ListGrants(r.Context(), id, cid); err != nil {
		return "", view{}, err
	}
	var events []api.AuditEvent
	for cursor := ""; len(events) < activityRead; {
		page, err := cl.ConnectionActivity(r.Context(), id, cid, 500, cursor)
		if err != nil {
			return "", view{}, err
		}
		events = append(events, page.Items...)
		if cursor = page.NextCursor; cursor == "" || (len(page.Items) > 0 && page.Items[len(page.Items)-1].Time.Before(c.now().Add(-chartHours*time.Hour))) {
			break
		}
	}
	v.Hours, v.MaxHour = perHour(events, c.now())
	for _, h := range v.Hours {
		v.Total += h.Count
	}
	v.Activity = events[:min(len(events), 20)]
	alerts, err := cl.ListAlerts(r.Context(), id, cid, 20, "")
	if err != nil {
		return "", view{}, err
	}
	v.Alerts = alerts.Items
	return "connection", view{Title: con.Name, Nav: "connections", Tenant: id, Data: v, Notice: noticeOf(r)}, nil
}

// grantAction suspends (with a reason) or resumes a grant: a protective,
// reversible act, so no typed confirmation.
func (c *Console) grantAction(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	cid, gid := r.PathValue("connection"), r.PathValue("grant")
	notice := ""
	switch r.PathValue("action") {
	case "suspend":
		reason := strings.TrimSpace(r.PostForm.Get("reason"))
		if reason == "" {
			reason = "suspended in the console"
		}
		_, err = cl.SuspendGrant(r.Context(), id, cid, gid, reason)
		notice = "grant_suspended"
	case "resume":
		_, err = cl.ResumeGrant(r.Context(), id, cid, gid)
		notice = "grant_resumed"
	default:
		return "", view{}, &api.Problem{Status: http.StatusNotFound}
	}
	if err != nil {
		return "", view{}, err
	}
	return c.seeOther(w, r, "/tenants/"+url.PathEscape(id)+"/connections/"+url.PathEscape(cid)+"?notice="+notice)
}

// functionsView is the platform's functions and their live environments.
type functionsView struct {
	Items []functionRow
}

type functionRow struct {
	F    api.Function
	Envs []api.FunctionEnvironment
}

func (c *Console) functions(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	fs, err := cl.ListFunctions(r.Context())
	if err != nil {
		return "", view{}, err
	}
	var v functionsView
	for _, f := range fs {
		envs, err := cl.FunctionEnvironments(r.Context(), f.Name)
		if err != nil {
			return "", view{}, err
		}
		v.Items = append(v.Items, functionRow{F: f, Envs: envs})
	}
	return "functions", view{Title: "Functions", Nav: "functions", Data: v}, nil
}
