package identity

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/png"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

func pngOf(t *testing.T, w, h int) string {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// TestBrandingRefusesWhatCouldHurtThePage checks every field a tenant's
// admin sets before it reaches its users' sign-in page.
func TestBrandingRefusesWhatCouldHurtThePage(t *testing.T) {
	svg := base64.StdEncoding.EncodeToString([]byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`))
	for name, tc := range map[string]struct {
		b    Branding
		code string
	}{
		"svg logo":           {Branding{Logo: svg}, "invalid_branding"},
		"not base64":         {Branding{Logo: "%%%"}, "invalid_branding"},
		"huge logo":          {Branding{Logo: pngOf(t, 600, 10)}, "invalid_branding"},
		"pale colour":        {Branding{PrimaryColor: "#ffff00"}, "low_contrast"},
		"named colour":       {Branding{PrimaryColor: "red"}, "invalid_branding"},
		"css injection":      {Branding{PrimaryColor: "#000;}x{"}, "invalid_branding"},
		"javascript url":     {Branding{SupportURL: "javascript:alert(1)"}, "invalid_branding"},
		"http url":           {Branding{SupportURL: "http://help.example"}, "invalid_branding"},
		"url with space":     {Branding{SupportURL: "https://help.example/a b"}, "invalid_branding"},
		"control in name":    {Branding{DisplayName: "Acme\u202eevil"}, "invalid_branding"},
		"newline in name":    {Branding{DisplayName: "Acme\nCorp"}, "invalid_branding"},
		"name too long":      {Branding{DisplayName: strings.Repeat("a", 101)}, "invalid_branding"},
		"empty mailto":       {Branding{SupportURL: "mailto:"}, "invalid_branding"},
		"https without host": {Branding{SupportURL: "https:///x"}, "invalid_branding"},
	} {
		if _, err := checkBranding(tc.b); !errs.Is(err, tc.code) {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	ok, err := checkBranding(Branding{DisplayName: " Acme Corp ", Logo: pngOf(t, 64, 32), PrimaryColor: "#1D4ED8", SupportURL: "https://help.acme.example/sign-in"})
	if err != nil || ok.DisplayName != "Acme Corp" || ok.PrimaryColor != "#1d4ed8" {
		t.Errorf("a good branding: %+v %v", ok, err)
	}
	if c, _ := parseColor("#767676"); contrast(c, [3]float64{1, 1, 1}) < 4.5 {
		t.Error("#767676 on white is 4.54:1, the lightest AA grey")
	}
}

// TestBackchannelLogoutURI: a client's back-channel logout URI follows
// the redirect URIs' rules (https, http on loopback only, absolute, no
// fragment, no user information).
func TestBackchannelLogoutURI(t *testing.T) {
	base := CreateClientRequest{Name: "app", GrantTypes: []string{"client_credentials"}}
	for _, bad := range []string{"javascript:alert(1)", "http://rp.example/logout", "/logout", "https://rp.example/logout#x",
		"https://user:pw@rp.example/logout", "ftp://rp.example/logout"} {
		req := base
		req.BackchannelLogoutURI = bad
		if _, err := req.validate(); !errs.Is(err, "invalid_backchannel_logout_uri") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for _, good := range []string{"https://rp.example/logout", "http://127.0.0.1:9000/logout"} {
		req := base
		req.BackchannelLogoutURI = good
		if c, err := req.validate(); err != nil || c.BackchannelLogoutURI != good {
			t.Errorf("%q: %+v %v", good, c, err)
		}
	}
}
