package console

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// brandingView is a tenant's sign-in branding and its form.
type brandingView struct {
	B api.Branding
	// LogoURL is the current logo as a data: URL, for the preview.
	LogoURL string
}

func logoURL(b api.Branding) string {
	raw, err := base64.StdEncoding.DecodeString(b.Logo)
	if err != nil || len(raw) == 0 {
		return ""
	}
	ct := http.DetectContentType(raw)
	if ct != "image/png" && ct != "image/jpeg" {
		return ""
	}
	return "data:" + ct + ";base64," + b.Logo
}

func (c *Console) branding(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	b, err := cl.GetBranding(r.Context(), id)
	if err != nil {
		return "", view{}, err
	}
	return "branding", view{Title: "Sign-in page of " + id, Nav: "branding", Tenant: id, Data: brandingView{B: b, LogoURL: logoURL(b)}, Notice: noticeOf(r)}, nil
}

// brandingSave sets the branding from the form: the logo is the file
// sent, else the current one (unless removed).
func (c *Console) brandingSave(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	cur, err := cl.GetBranding(r.Context(), id)
	if err != nil {
		return "", view{}, err
	}
	f := r.PostForm
	b := api.Branding{DisplayName: strings.TrimSpace(f.Get("display_name")), PrimaryColor: strings.TrimSpace(f.Get("primary_color")),
		SupportURL: strings.TrimSpace(f.Get("support_url")), Logo: cur.Logo}
	if f.Get("remove_logo") == "on" {
		b.Logo = ""
	}
	if r.MultipartForm != nil {
		if file, _, err := r.FormFile("logo"); err == nil {
			raw, err := io.ReadAll(io.LimitReader(file, 64<<10))
			file.Close()
			if err != nil {
				return "", view{}, err
			}
			if len(raw) > 0 {
				b.Logo = base64.StdEncoding.EncodeToString(raw)
			}
		}
	}
	if b.PrimaryColor == "#1d4ed8" && cur.PrimaryColor == "" {
		b.PrimaryColor = "" // the colour picker's default: Bulkhead's own
	}
	_, err = cl.SetBranding(r.Context(), id, b)
	if p := refusal(err); p != nil {
		b.Logo = cur.Logo
		return "branding", view{Title: "Sign-in page of " + id, Nav: "branding", Tenant: id, Status: p.Status, Error: problemMessage(p),
			Data: brandingView{B: b, LogoURL: logoURL(cur)}}, nil
	}
	if err != nil {
		return "", view{}, err
	}
	return c.seeOther(w, r, "/tenants/"+url.PathEscape(id)+"/branding?notice=branding")
}
