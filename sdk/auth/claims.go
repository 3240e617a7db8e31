package auth

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Claims are the verified claims of a Bulkhead token.
type Claims struct {
	Issuer    string    // iss: the platform issuer or a silo tenant's issuer
	Subject   string    // sub
	Audience  []string  // aud (a single string becomes a one-element slice)
	Expiry    time.Time // exp
	NotBefore time.Time // nbf, zero when absent
	IssuedAt  time.Time // iat, zero when absent
	ID        string    // jti
	// TenantID is the tenant the token acts for, "" for a platform client's
	// token. A silo issuer's tokens always carry their own tenant.
	TenantID string
	Tier     string   // tier
	Groups   []string // groups
	Scopes   []string // scope, split on spaces
	ClientID string   // client_id
	// Actor is the sub of the act claim (RFC 8693 §4.1): on a token made by
	// token exchange, the client acting for Subject ("" on other tokens).
	// Earlier actors of a chain, if any, are not kept.
	Actor string
	// Tags are the session tags of a partner's token (the tags claim): the
	// partner id, the trust id and the attributes the trust lets the partner
	// set, e.g. {"partner": "prt_…", "trust": "trs_…", "region": "eu"}. Nil
	// when the token has none (no tags claim, or null).
	Tags map[string]string
}

// HasScope reports whether the token was granted scope.
func (c *Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// InGroup reports whether the subject is a member of group.
func (c *Claims) InGroup(group string) bool { return slices.Contains(c.Groups, group) }

// clone returns a copy that shares nothing mutable with c, so that a caller
// changing its Claims cannot change what the cache hands to the next.
func (c *Claims) clone() *Claims {
	d := *c
	d.Audience = slices.Clone(c.Audience)
	d.Groups = slices.Clone(c.Groups)
	d.Scopes = slices.Clone(c.Scopes)
	d.Tags = maps.Clone(c.Tags)
	return &d
}

// rawClaims is the payload as it is decoded, before validation. A claim
// that is absent or null is the zero value.
type rawClaims struct {
	Iss      string
	Sub      string
	Aud      []string
	Exp      time.Time // zero when absent
	Nbf      time.Time
	Iat      time.Time
	Jti      string
	TenantID string
	Tier     string
	Groups   []string
	Scope    string
	ClientID string
	TokenUse string
	Act      string            // act.sub
	Tags     map[string]string // nil when absent or null
	// Whether exp, nbf, iat, tenant_id and act were given (not null); kept
	// together so that the struct stays in its allocation size class.
	HasExp, HasNbf, HasIat, HasTenant, HasAct bool
}

var errClaimsSyntax = refuse(ErrClaims, "the token's payload is not a valid claim set")

// decodeClaims decodes a JWT payload (RFC 8259 JSON; RFC 7519 claims). It
// does not validate the claims. It is a small hand-written decoder rather
// than encoding/json, whose reflection costs as much as a tenth of an
// Ed25519 verification; FuzzDecodeClaims holds it to encoding/json.
//
// It is stricter than encoding/json: a known claim may appear once, and so
// may a key of the tags claim, a key that differs from a known claim only in
// case is refused (encoding/json would take it for the claim), a tag's value
// must be a string (encoding/json takes null for ""), the tags claim has at
// most maxTags members, strings must be valid UTF-8 without lone
// surrogates, and values nest at most 32 deep.
//
// The strings it returns share payload's memory, which must not change
// afterwards.
func decodeClaims(payload []byte) (*rawClaims, error) {
	d := claimsDecoder{s: unsafe.String(unsafe.SliceData(payload), len(payload))}
	c, ok := d.object()
	if !ok {
		return nil, errClaimsSyntax
	}
	return c, nil
}

type claimsDecoder struct {
	s string
	i int
}

const maxDepth = 32

func (d *claimsDecoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// consume skips whitespace and then c, reporting whether c was there.
func (d *claimsDecoder) consume(c byte) bool {
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *claimsDecoder) peek() byte {
	d.ws()
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

// claim bits, to refuse a claim given twice.
const (
	bIss = 1 << iota
	bSub
	bAud
	bExp
	bNbf
	bIat
	bJti
	bTenant
	bTier
	bGroups
	bScope
	bClient
	bTokenUse
	bAct
	bTags
)

var claimNames = [...]string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "tenant_id", "tier", "groups", "scope", "client_id", "token_use", "act", "tags"}

// object decodes the top-level object and checks nothing follows it.
func (d *claimsDecoder) object() (*rawClaims, bool) {
	c := &rawClaims{}
	if !d.consume('{') {
		return nil, false
	}
	seen := 0
	if d.consume('}') {
		d.ws()
		return c, d.i == len(d.s)
	}
	for {
		key, ok := d.str()
		if !ok || !d.consume(':') {
			return nil, false
		}
		bit := 0
		switch key {
		case "iss":
			bit = bIss
			c.Iss, ok = d.nullableString()
		case "sub":
			bit = bSub
			c.Sub, ok = d.nullableString()
		case "aud":
			bit = bAud
			c.Aud, ok = d.audience()
		case "exp":
			bit = bExp
			c.Exp, c.HasExp, ok = d.date()
		case "nbf":
			bit = bNbf
			c.Nbf, c.HasNbf, ok = d.date()
		case "iat":
			bit = bIat
			c.Iat, c.HasIat, ok = d.date()
		case "jti":
			bit = bJti
			c.Jti, ok = d.nullableString()
		case "tenant_id":
			bit = bTenant
			if d.null() {
				break
			}
			c.TenantID, ok = d.str()
			c.HasTenant = true
		case "tier":
			bit = bTier
			c.Tier, ok = d.nullableString()
		case "groups":
			bit = bGroups
			c.Groups, ok = d.stringArray()
		case "scope":
			bit = bScope
			c.Scope, ok = d.nullableString()
		case "client_id":
			bit = bClient
			c.ClientID, ok = d.nullableString()
		case "token_use":
			bit = bTokenUse
			c.TokenUse, ok = d.nullableString()
		case "act":
			bit = bAct
			c.Act, c.HasAct, ok = d.actor()
		case "tags":
			bit = bTags
			c.Tags, ok = d.tags()
		default:
			for _, n := range claimNames {
				if strings.EqualFold(key, n) {
					return nil, false
				}
			}
			ok = d.skip(0)
		}
		if !ok || seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		if d.consume(',') {
			continue
		}
		if !d.consume('}') {
			return nil, false
		}
		d.ws()
		return c, d.i == len(d.s)
	}
}

// actor decodes the act claim: null, or an object whose sub (a string or
// null) names the actor; its other members (iss, a nested act of earlier
// actors, …) are checked and skipped. As at the top level, sub may appear
// once, and a key that differs from it only in case is refused.
func (d *claimsDecoder) actor() (sub string, has, ok bool) {
	if d.null() {
		return "", false, true
	}
	if !d.consume('{') {
		return "", false, false
	}
	if d.consume('}') {
		return "", true, true
	}
	seen := false
	for {
		key, ok := d.str()
		if !ok || !d.consume(':') {
			return "", false, false
		}
		switch {
		case key == "sub":
			if seen {
				return "", false, false
			}
			seen = true
			if sub, ok = d.nullableString(); !ok {
				return "", false, false
			}
		case strings.EqualFold(key, "sub"):
			return "", false, false
		default:
			if !d.skip(1) {
				return "", false, false
			}
		}
		if d.consume(',') {
			continue
		}
		return sub, true, d.consume('}')
	}
}

// maxTags bounds the members of the tags claim.
const maxTags = 50

// tags decodes the tags claim: null (a nil map), or an object of at most
// maxTags members whose values are strings ({} is an empty map). A key may
// appear once; keys that differ only in case are different tags.
func (d *claimsDecoder) tags() (map[string]string, bool) {
	if d.null() {
		return nil, true
	}
	if !d.consume('{') {
		return nil, false
	}
	if d.consume('}') {
		return map[string]string{}, true
	}
	var buf [16]string // key, value, key, value…: a map of the right size
	kv := buf[:0]
	for {
		k, ok := d.str()
		if !ok || !d.consume(':') {
			return nil, false
		}
		v, ok := d.str()
		if !ok || len(kv) == 2*maxTags {
			return nil, false
		}
		kv = append(kv, k, v)
		if d.consume(',') {
			continue
		}
		if !d.consume('}') {
			return nil, false
		}
		m := make(map[string]string, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		if len(m) != len(kv)/2 {
			return nil, false // a key given twice
		}
		return m, true
	}
}

// null consumes a JSON null if one is next.
func (d *claimsDecoder) null() bool {
	d.ws()
	if strings.HasPrefix(d.s[d.i:], "null") {
		d.i += 4
		return true
	}
	return false
}

func (d *claimsDecoder) nullableString() (string, bool) {
	if d.null() {
		return "", true
	}
	return d.str()
}

// audience decodes a string or an array of strings.
func (d *claimsDecoder) audience() ([]string, bool) {
	switch d.peek() {
	case '"':
		s, ok := d.str()
		return []string{s}, ok
	}
	return d.stringArray()
}

// stringArray decodes null or an array of strings.
func (d *claimsDecoder) stringArray() ([]string, bool) {
	if d.null() {
		return nil, true
	}
	if !d.consume('[') {
		return nil, false
	}
	var buf [8]string // most lists are short: one allocation, of the right size
	l := buf[:0]
	if d.consume(']') {
		return []string{}, true
	}
	for {
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		l = append(l, s)
		if d.consume(',') {
			continue
		}
		return slices.Clip(slices.Clone(l)), d.consume(']')
	}
}

// date decodes null or a NumericDate: seconds since the epoch, possibly
// with a fraction, from 0 to the end of year 9999.
func (d *claimsDecoder) date() (time.Time, bool, bool) {
	if d.null() {
		return time.Time{}, false, true
	}
	lit, isInt, ok := d.number()
	if !ok {
		return time.Time{}, false, false
	}
	if isInt {
		n, err := strconv.ParseInt(lit, 10, 64)
		if err != nil || n < 0 || n > maxNumericDate {
			return time.Time{}, false, false
		}
		return time.Unix(n, 0).UTC(), true, true
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, false, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, true
}

// maxNumericDate is 9999-12-31T23:59:59Z.
const maxNumericDate = 253402300799

// number scans a JSON number, returning its literal and whether it is an
// integer (no fraction or exponent).
func (d *claimsDecoder) number() (string, bool, bool) {
	d.ws()
	s, start := d.s, d.i
	i := start
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return "", false, false
	}
	isInt := true
	if i < len(s) && s[i] == '.' {
		isInt = false
		i++
		j := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == j {
			return "", false, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		isInt = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == j {
			return "", false, false
		}
	}
	d.i = i
	return s[start:i], isInt, true
}

// str decodes a JSON string. Without escapes it is a substring of the
// payload, with no copy.
func (d *claimsDecoder) str() (string, bool) {
	d.ws()
	s := d.s
	if d.i >= len(s) || s[d.i] != '"' {
		return "", false
	}
	start := d.i + 1
	i := start
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			d.i = i + 1
			out := s[start:i]
			return out, utf8.ValidString(out)
		case c == '\\':
			return d.unescape(start)
		case c < 0x20:
			return "", false
		}
		i++
	}
	return "", false
}

// unescape decodes the string that starts at start and has escapes.
func (d *claimsDecoder) unescape(start int) (string, bool) {
	s := d.s
	var b strings.Builder
	i := start
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			d.i = i + 1
			out := b.String()
			return out, utf8.ValidString(out)
		case c < 0x20:
			return "", false
		case c != '\\':
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		i++
		switch s[i] {
		case '"', '\\', '/':
			b.WriteByte(s[i])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(s, i+1)
			if !ok {
				return "", false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || i+6 >= len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
					return "", false // lone surrogate
				}
				r2, ok := hex4(s, i+3)
				if !ok {
					return "", false
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", false
				}
				i += 6
			}
			b.WriteRune(r)
		default:
			return "", false
		}
		i++
	}
	return "", false
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skip checks and skips any JSON value.
func (d *claimsDecoder) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch d.peek() {
	case '"':
		_, ok := d.str()
		return ok
	case '{':
		d.i++
		if d.consume('}') {
			return true
		}
		for {
			if _, ok := d.str(); !ok || !d.consume(':') || !d.skip(depth+1) {
				return false
			}
			if d.consume(',') {
				continue
			}
			return d.consume('}')
		}
	case '[':
		d.i++
		if d.consume(']') {
			return true
		}
		for {
			if !d.skip(depth + 1) {
				return false
			}
			if d.consume(',') {
				continue
			}
			return d.consume(']')
		}
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	_, _, ok := d.number()
	return ok
}

func (d *claimsDecoder) literal(l string) bool {
	if strings.HasPrefix(d.s[d.i:], l) {
		d.i += len(l)
		return true
	}
	return false
}

// scopes splits a scope claim.
func scopes(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}
