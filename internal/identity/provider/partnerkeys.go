package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// A private_key_jwt partner's keys are fetched from its JWKS URL through
// the federation client (https, public addresses only unless private
// upstreams are allowed, time and size bounded). The set is fetched
// again when an assertion names a key it does not hold (the partner
// rotated its keys) or when it is older than partnerKeysMaxAge — and at
// most once per partnerKeysRefetch whoever asks: a partner's id is its
// public client_id, so anyone can send assertions naming it, and they
// must not make the node fetch the partner's keys at their rate.
const (
	partnerKeysMaxAge  = time.Hour
	partnerKeysRefetch = 2 * time.Second
)

// partnerKeySet is one JWKS URL's keys.
type partnerKeySet struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	keys    []jose.JSONWebKey // public keys only
	fetched time.Time         // the last fetch that succeeded
	tried   time.Time         // the last fetch
}

// verify checks jws with the key its header names (or, without a kid,
// any of the set's) and returns the payload.
func (k *partnerKeySet) verify(ctx context.Context, now time.Time, jws *jose.JSONWebSignature) ([]byte, error) {
	if len(jws.Signatures) != 1 {
		return nil, errors.New("provider: an assertion has one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	for _, key := range k.current(ctx, now, kid) {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(key); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("provider: no key of the partner verifies the assertion")
}

// current returns the keys, fetching them first when they are missing,
// old, or lack kid, and the last fetch is long enough ago.
func (k *partnerKeySet) current(ctx context.Context, now time.Time, kid string) []jose.JSONWebKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	stale := k.fetched.IsZero() || now.Sub(k.fetched) >= partnerKeysMaxAge || (kid != "" && !k.holds(kid))
	if stale && (k.tried.IsZero() || now.Sub(k.tried) >= partnerKeysRefetch) {
		k.tried = now
		if keys, err := k.fetch(ctx); err == nil {
			k.keys, k.fetched = keys, now
		}
	}
	return k.keys
}

func (k *partnerKeySet) holds(kid string) bool {
	for _, key := range k.keys {
		if key.KeyID == kid {
			return true
		}
	}
	return false
}

// fetch reads the JWKS and keeps its public asymmetric keys.
func (k *partnerKeySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("provider: partner keys: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, fmt.Errorf("provider: partner keys: %w", err)
	}
	var out []jose.JSONWebKey
	for _, key := range set.Keys {
		pub := key.Public() // drops private parts; invalid for symmetric keys
		if pub.Valid() && (key.Use == "" || key.Use == "sig") {
			out = append(out, pub)
		}
	}
	return out, nil
}
