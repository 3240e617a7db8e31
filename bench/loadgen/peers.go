package main

// The peers bench/run measures Bulkhead beside, each in its own process,
// interleaved with Bulkhead (interleave) and with each process's CPU:
//
//   - authorization (-opa-url): the authz phase's 50 Cedar policies
//     written in Rego (-write-rego), served by OPA, checked to give the
//     same decisions as Bulkhead on a grid of requests;
//   - token issuance (-zitadel-url): the zitadel/oidc example OP
//     (bench/peers/zitadelop) issuing ES256 JWT access tokens to its
//     client-credentials service user, checked like Bulkhead's.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// authzRego is the Rego twin of authzPolicy(0…n-1), package bench, rule
// allow: Cedar's semantics for these shapes (forbid overrides permit, `in`
// is the entity itself or any ancestor through the request's entities, a
// condition that errors leaves its policy out).
func authzRego(n int) string {
	var b strings.Builder
	b.WriteString(`package bench

import rego.v1

# Entities as "Type::id"; parents from the request's entity list.
uid(e) := concat("::", [e.type, e.id])

parents[u] := {uid(p) | some p in e.parents} if {
	some e in input.entities
	u := uid(e.uid)
}

attrs[u] := e.attrs if {
	some e in input.entities
	u := uid(e.uid)
}

principal := uid(input.principal)

action := uid(input.action)

resource := uid(input.resource)

# graph.reachable follows only nodes that are keys: every entity and
# every parent named is one.
nodes := {uid(e.uid) | some e in input.entities} | {uid(p) | some e in input.entities; some p in e.parents}

hierarchy := {n: object.get(parents, n, set()) | some n in nodes}

# Cedar's in: the entity itself or an ancestor.
in_entity(x, t) if x == t

in_entity(x, t) if t in graph.reachable(hierarchy, {x})

# resource.owner == principal, defined only when the owner is an entity.
owner_is_principal := uid(attrs[resource].owner.__entity) == principal

default allow := false

allow if {
	permit
	not forbid
}
`)
	for i := range n {
		fmt.Fprintf(&b, "\n# %s\n", authzPolicy(i))
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, "permit if {\n\tprincipal == \"User::u%d\"\n\taction == \"Action::read\"\n\tin_entity(resource, \"Folder::f%d\")\n}\n", i, i%5)
		case 1:
			for _, cond := range []string{"owner_is_principal", fmt.Sprintf("owner_is_principal == false\n\tinput.context.level > %d", i)} {
				fmt.Fprintf(&b, "permit if {\n\tin_entity(principal, \"Group::g%d\")\n\taction in {\"Action::read\", \"Action::write\"}\n\t%s\n}\n", i%7, cond)
			}
		default:
			fmt.Fprintf(&b, "forbid if {\n\taction == \"Action::delete\"\n\tin_entity(resource, \"Folder::f%d\")\n\tattrs[resource].locked == true\n\tnot in_entity(principal, \"Group::admins\")\n}\n", i%5)
		}
	}
	return b.String()
}

// authzInput is authzRequest with the group of the user, the context's
// level and the document's locked flag chosen.
func authzInput(user, action, group string, level int, locked bool) []byte {
	return fmt.Appendf(nil, `{"principal":{"type":"User","id":%q},"action":{"type":"Action","id":%q},
"resource":{"type":"Doc","id":"d7"},"context":{"level":%d},"entities":[
{"uid":{"type":"User","id":%q},"attrs":{},"parents":[{"type":"Group","id":%q}]},
{"uid":{"type":"Doc","id":"d7"},"attrs":{"owner":{"__entity":{"type":"User","id":"u2"}},"locked":%t},"parents":[{"type":"Folder","id":"f2"}]},
{"uid":{"type":"Folder","id":"f2"},"attrs":{},"parents":[]}]}`, user, action, level, user, group, locked)
}

// authzGrid is the requests both engines must decide alike: users with
// and without their own policies, each action, levels below, between and
// above the policies' thresholds, locked or not, in an ordinary group or
// in admins.
func authzGrid() [][]byte {
	var grid [][]byte
	for _, user := range []string{"u0", "u2", "u3", "u9"} {
		for _, action := range []string{"read", "write", "delete"} {
			for _, level := range []int{0, 12, 60} {
				for _, locked := range []bool{false, true} {
					for _, group := range []string{"g3", "g1", "admins"} {
						grid = append(grid, authzInput(user, action, group, level, locked))
					}
				}
			}
		}
	}
	return grid
}

// opaDecide asks OPA at base for data.bench.allow with input.
func opaDecide(ctx context.Context, l *loader, input []byte) (allow, ok bool, err error) {
	body := make([]byte, 0, len(input)+10)
	body = append(append(append(body, `{"input":`...), input...), '}')
	b, ok, err := l.request(ctx, http.MethodPost, "/v1/data/bench/allow", body, http.StatusOK)
	if err != nil || !ok {
		return false, ok, err
	}
	var r struct {
		Result *bool `json:"result"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Result == nil {
		return false, false, nil
	}
	return *r.Result, true, nil
}

// authzVersusOPA checks that Bulkhead (decide) and OPA agree on every
// request of authzGrid, then measures both on the allowed request of the
// authz phase, interleaved over rounds (phases authz_peer_bulkhead and
// authz_peer_opa).
func authzVersusOPA(ctx context.Context, o options, bulkhead *loader, path string, out io.Writer) error {
	opa := &loader{client: newClient(o.conns), base: strings.TrimRight(o.opaURL, "/")}
	decide := func(ctx context.Context, l *loader, input []byte) (bool, bool, error) {
		b, ok, err := l.request(ctx, http.MethodPost, path, input, http.StatusOK)
		var d struct {
			Decision string `json:"decision"`
		}
		if err == nil && ok && json.Unmarshal(b, &d) != nil {
			ok = false
		}
		return d.Decision == "allow", ok, err
	}
	allows := 0
	for _, in := range authzGrid() {
		want, ok1, err1 := decide(ctx, bulkhead, in)
		got, ok2, err2 := opaDecide(ctx, opa, in)
		if err := errors.Join(err1, err2); err != nil || !ok1 || !ok2 {
			return errors.Join(err, fmt.Errorf("deciding %s: Bulkhead answered %t, OPA %t", in, ok1, ok2))
		}
		if got != want {
			return fmt.Errorf("OPA decided %t where Bulkhead decided %t for %s", got, want, in)
		}
		if want {
			allows++
		}
	}
	if allows == 0 || allows == len(authzGrid()) {
		return fmt.Errorf("the grid of %d requests had %d allows: it checks nothing", len(authzGrid()), allows)
	}
	fmt.Fprintf(out, "PEERCHECK authz grid=%d allows=%d opa=same\n", len(authzGrid()), allows)
	allow := authzRequest("u0", "read")
	pick := func(l *loader, f func(context.Context, *loader, []byte) (bool, bool, error)) func(context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			yes, ok, err := f(ctx, l, allow)
			return ok && yes, err
		}
	}
	return interleave(ctx, out, "authz_peer_", o.conns, o.peerRounds, o.warmup, o.authzDuration/time.Duration(o.peerRounds), []contender{
		{name: "bulkhead", pids: []int{o.serverPID}, l: bulkhead, op: pick(bulkhead, decide)},
		{name: "opa", pids: []int{o.opaPID}, l: opa, op: pick(opa, opaDecide)},
	})
}

// The example OP's client-credentials service user.
const zitadelClient, zitadelSecret = "sid1", "verysecret"

// tokensVersusZitadel checks that the example OP issues an ES256 JWT
// access token as Bulkhead does (client id, secret of Bulkhead's token
// phase), then measures both, interleaved over rounds (phases
// token_peer_bulkhead and token_peer_zitadel).
func tokensVersusZitadel(ctx context.Context, o options, bulkhead *loader, id, secret string, out io.Writer) error {
	zop := &loader{client: newClient(o.conns), base: strings.TrimRight(o.zitadelURL, "/")}
	sides := []struct {
		name   string
		l      *loader
		client string
		issue  func(context.Context) ([]byte, bool, error)
	}{
		{"bulkhead", bulkhead, id, tokenIssuer(bulkhead, id, secret)},
		{"zitadel", zop, zitadelClient, tokenIssuer(zop, zitadelClient, zitadelSecret)},
	}
	cs := make([]contender, len(sides))
	for i, s := range sides {
		b, ok, err := s.issue(ctx)
		if err != nil || !ok {
			return errors.Join(err, fmt.Errorf("%s refused its client (see above)", s.name))
		}
		alg, err := checkAccessToken(b, s.client)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if alg != "ES256" {
			return fmt.Errorf("%s signs its access tokens with %s, not ES256: not the same work", s.name, alg)
		}
		issue := s.issue
		cs[i] = contender{name: s.name, l: s.l, op: func(ctx context.Context) (bool, error) {
			b, ok, err := issue(ctx)
			return ok && bytes.Contains(b, []byte(`"access_token"`)), err
		}}
	}
	cs[0].pids, cs[1].pids = []int{o.serverPID}, []int{o.zitadelPID}
	fmt.Fprintln(out, "PEERCHECK token bulkhead=ES256 zitadel=ES256")
	return interleave(ctx, out, "token_peer_", o.conns, o.peerRounds, o.warmup, o.tokenDuration/time.Duration(o.peerRounds), cs)
}
