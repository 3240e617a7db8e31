package partners

import (
	"context"
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// FuzzTrustSettings feeds a trust's settings, as a tenant's admin sends
// them, to their validation: it never panics, and what it accepts is
// within every bound, canonical (networks masked, scopes and partner tags
// each once) and accepted again unchanged.
func FuzzTrustSettings(f *testing.F) {
	for _, seed := range []string{
		`{"partner":"prt_x","scopes":["reports:read","kms:decrypt"]}`,
		`{"scopes":["a"],"source_networks":["10.0.0.1/8","2001:db8::/32","192.0.2.7"],"max_session_seconds":60}`,
		`{"scopes":["a","a"],"tags":{"plan":"gold","region":"eu"},"partner_tags":["team","team"]}`,
		`{"scopes":["openid"]}`, `{"scopes":[]}`, `{"scopes":["A"]}`, `{"scopes":["a"],"max_session_seconds":3601}`,
		`{"scopes":["a"],"source_networks":["fe80::1%eth0"]}`, `{"scopes":["a"],"source_networks":["10.0.0.0/33"]}`,
		`{"scopes":["a"],"tags":{"partner":"x"}}`, `{"scopes":["a"],"tags":{"plan":"x"},"partner_tags":["plan"]}`,
		`{"scopes":["a"],"tags":{"k":"\u0000"}}`, `{"scopes":["a"],"description":"\ud800"}`,
		`{"scopes":["a"],"source_networks":["::ffff:10.0.0.1/104"]}`,
	} {
		f.Add([]byte(seed))
	}
	s := &Service{}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body []byte) {
		var in api.CreateTrust
		if json.Unmarshal(body, &in) != nil {
			return
		}
		got, err := s.validate(ctx, "acme", in)
		if err != nil {
			return
		}
		if len(got.scopes) == 0 || len(got.scopes) > MaxScopes || got.session < MinSession || got.session > MaxSession ||
			len(got.networks) > MaxNetworks || len(got.tags)+len(got.partnerTags) > MaxTags {
			t.Fatalf("accepted out of bounds: %+v", got)
		}
		for i, sc := range got.scopes {
			if !scopePattern.MatchString(sc) || slices.Contains(got.scopes[:i], sc) || slices.Contains(reservedScopes, sc) {
				t.Fatalf("scope %q accepted", sc)
			}
		}
		for _, n := range got.networks {
			p, err := netip.ParsePrefix(n)
			if err != nil || p != p.Masked() {
				t.Fatalf("network %q kept", n)
			}
		}
		for k, v := range got.tags {
			if !tagKeyPattern.MatchString(k) || k == TagPartner || k == TagTrust || checkTagValue(k, v) != nil || slices.Contains(got.partnerTags, k) {
				t.Fatalf("tag %q=%q kept", k, v)
			}
		}
		again, err := s.validate(ctx, "acme", api.CreateTrust{Description: got.description, Scopes: got.scopes, Policy: got.policy,
			MaxSessionSeconds: int(got.session / time.Second), SourceNetworks: got.networks, Tags: got.tags, PartnerTags: got.partnerTags})
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("not canonical: %+v then %+v (%v)", got, again, err)
		}
	})
}
