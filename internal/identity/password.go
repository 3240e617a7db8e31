package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// Argon2Params are the argon2id parameters of a password hash. They are
// recorded in every hash (PHC string format), so they can be raised later
// without invalidating stored hashes.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	KeyLen  uint32
	SaltLen uint32
}

// DefaultArgon2 follows RFC 9106's second recommended option (64 MiB, 3
// passes) with one lane. More lanes do not make a hash harder to crack
// (an attacker pays the same memory and passes), only faster to compute
// on several cores at once: with two, each hash took both cores of a
// 2-core node for its duration, so a tenant creating users stalled every
// other tenant's requests (11–14× their p99). With one, a hash takes one
// core, and the hasher's pool (half the cores) leaves the rest to the
// other tenants. Hashes made with more lanes still verify (the
// parameters are in each hash).
var DefaultArgon2 = Argon2Params{Memory: 64 * 1024, Time: 3, Threads: 1, KeyLen: 32, SaltLen: 16}

// HashPassword returns the PHC-format argon2id hash of password:
// $argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash> (unpadded standard base64).
func HashPassword(password string, p Argon2Params) string {
	salt := make([]byte, p.SaltLen)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	defer clear(key)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// errBadHash is returned for a stored hash that is not one HashPassword makes.
var errBadHash = errors.New("identity: malformed password hash")

// Limits on the parameters a stored hash may ask for, so that a corrupted or
// planted hash cannot make verification exhaust memory or time.
const (
	maxArgonMemory = 1 << 20 // 1 GiB in KiB
	maxArgonTime   = 16
	maxArgonKeyLen = 64
)

// parseHash reads a PHC-format argon2id hash.
func parseHash(encoded string) (p Argon2Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &threads); err != nil || n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, threads) != parts[3] {
		return p, nil, nil, errBadHash
	}
	if p.Memory < 8 || p.Memory > maxArgonMemory || p.Time < 1 || p.Time > maxArgonTime || threads < 1 || threads > 255 {
		return p, nil, nil, errBadHash
	}
	p.Threads = uint8(threads)
	if salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, nil, nil, errBadHash
	}
	if key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > maxArgonKeyLen {
		return p, nil, nil, errBadHash
	}
	p.KeyLen, p.SaltLen = uint32(len(key)), uint32(len(salt))
	return p, salt, key, nil
}

// VerifyPassword reports whether password matches the encoded hash, comparing
// in constant time. A malformed hash never matches.
func VerifyPassword(encoded, password string) bool {
	p, salt, key, err := parseHash(encoded)
	if err != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	defer clear(got)
	return subtle.ConstantTimeCompare(got, key) == 1
}

// PasswordPolicy is a tenant's rule for new passwords.
type PasswordPolicy struct {
	MinLength int `json:"min_length"` // in characters; at least 8
}

// DefaultPasswordPolicy is the policy a tenant starts with.
var DefaultPasswordPolicy = PasswordPolicy{MinLength: 12}

// maxPasswordLength bounds the work a password can cost (argon2 hashes any length).
const maxPasswordLength = 256

// commonPasswords are refused whatever the policy's length: the most used
// passwords of public breach corpora that reach the minimum length.
var commonPasswords = map[string]bool{
	"123456789012": true, "1234567890123": true, "12345678901234": true, "qwertyuiop123": true,
	"password1234": true, "password12345": true, "passwordpassword": true, "qwertyqwerty": true,
	"iloveyou1234": true, "111111111111": true, "000000000000": true, "abcdefghijkl": true,
	"qwertyuiopasdfgh": true, "1q2w3e4r5t6y": true, "123123123123": true, "letmeinletmein": true,
	"administrator": true, "welcome12345": true, "changeme1234": true, "123qweasdzxc": true,
}

// Check reports whether password is acceptable under the policy for the
// user with email. The error never contains the password.
func (pp PasswordPolicy) Check(password, email string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return errs.Field("password", "weak_password", "the password must be UTF-8 text")
	case n < pp.MinLength:
		return errs.Field("password", "weak_password", "the password must be at least %d characters", pp.MinLength)
	case n > maxPasswordLength:
		return errs.Field("password", "weak_password", "the password must be at most %d characters", maxPasswordLength)
	case commonPasswords[strings.ToLower(password)]:
		return errs.Field("password", "weak_password", "the password is one of the most common passwords; choose another")
	case email != "" && strings.EqualFold(password, email):
		return errs.Field("password", "weak_password", "the password must not be the email address")
	}
	return nil
}

// NewTemporaryPassword returns a random password of 24 characters for a user
// created without one; it is shown once to whoever created the user.
func NewTemporaryPassword() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
