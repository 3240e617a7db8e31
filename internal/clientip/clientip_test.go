package clientip

import (
	"net/http"
	"testing"
)

func TestIP(t *testing.T) {
	r, err := New([]string{"10.0.0.0/8", "192.168.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	none, _ := New(nil)
	for _, tc := range []struct {
		res    *Resolver
		remote string
		xff    []string
		want   string
	}{
		{none, "203.0.113.7:1234", []string{"1.2.3.4"}, "203.0.113.7"},           // no trusted proxies: the header is ignored
		{r, "203.0.113.7:1234", []string{"1.2.3.4"}, "203.0.113.7"},              // an untrusted peer cannot choose its address
		{r, "10.1.2.3:80", []string{"1.2.3.4"}, "1.2.3.4"},                       // one trusted proxy
		{r, "10.1.2.3:80", []string{"6.6.6.6, 1.2.3.4, 192.168.1.1"}, "1.2.3.4"}, // spoofed left entries are skipped
		{r, "10.1.2.3:80", []string{"6.6.6.6", "1.2.3.4"}, "1.2.3.4"},            // several headers
		{r, "10.1.2.3:80", []string{"junk, 1.2.3.4"}, "1.2.3.4"},
		{r, "10.1.2.3:80", []string{"1.2.3.4, junk"}, "10.1.2.3"},
		{r, "10.1.2.3:80", nil, "10.1.2.3"},
		{r, "[::ffff:10.1.2.3]:80", []string{"2001:db8::1"}, "2001:db8::1"},
	} {
		req := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		for _, v := range tc.xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		if got := tc.res.IP(req); got != tc.want {
			t.Errorf("IP(%s, %v) = %s; want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
	if _, err := New([]string{"not-an-ip"}); err == nil {
		t.Error("a bad trusted proxy was accepted")
	}
}

func TestLimitKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
	} {
		if got := LimitKey(in); got != want {
			t.Errorf("LimitKey(%q) = %q, want %q", in, got, want)
		}
	}
}
