package domains

import (
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// profile converts a name as a browser would before it asks DNS: Unicode
// labels to their A-label (punycode) form, lower-cased, with the IDNA
// validity rules applied. A name that browsers would not resolve cannot be
// verified or be given a certificate, so it is refused here, not later.
var profile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.ValidateLabels(true),
	idna.StrictDomainName(true),
	idna.VerifyDNSLength(true),
	idna.Transitional(false),
)

// ascii is what a name must look like after IDNA: LDH labels, the last one
// not all digits (so "1.2.3.4" and its kin are never names).
var ascii = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]*[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseName returns the canonical form of a custom domain name: its
// A-label form, lower case, with no trailing dot. It refuses IP addresses,
// wildcards, single labels, names over 253 characters and labels over 63:
// a custom domain is one host that a tenant proves it controls, and its
// canonical form is the key that makes it unique across tenants.
func ParseName(s string) (string, error) {
	bad := func(format string, args ...any) error {
		return errs.Field("domain", "invalid_domain", format, args...)
	}
	if s == "" {
		return "", bad("a domain is required")
	}
	if len(s) > 1024 {
		return "", bad("the domain is too long")
	}
	if strings.Contains(s, "*") {
		return "", bad("wildcard domains are not supported")
	}
	if !utf8.ValidString(s) {
		return "", bad("the domain is not valid UTF-8")
	}
	trimmed := strings.TrimSuffix(s, ".")
	if _, err := netip.ParseAddr(strings.Trim(trimmed, "[]")); err == nil {
		return "", bad("an IP address is not a domain")
	}
	name, err := profile.ToASCII(trimmed)
	if err != nil {
		return "", bad("%q is not a valid domain name", errs.Clip(s, 80))
	}
	name = strings.ToLower(name)
	if len(name) > 253 || !ascii.MatchString(name) {
		return "", bad("%q is not a valid domain name", errs.Clip(s, 80))
	}
	// The A-label form must itself be a name IDNA accepts as it is: a
	// punycode label that decodes to something invalid is refused.
	if again, err := profile.ToASCII(name); err != nil || again != name {
		return "", bad("%q is not a valid domain name", errs.Clip(s, 80))
	}
	for label := range strings.SplitSeq(name, ".") {
		if len(label) > 63 {
			return "", bad("a label of %q is over 63 characters", errs.Clip(s, 80))
		}
	}
	return name, nil
}
