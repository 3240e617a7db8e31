package authz

import (
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// FuzzEntitiesMatchCedar holds decodeEntities to cedar-go's own decoding
// of the JSON entity format: both refuse the same inputs, and both read
// the same entities from the others.
func FuzzEntitiesMatchCedar(f *testing.F) {
	for _, s := range []string{
		`[]`, `null`, `{}`, `[{}]`, `[null]`, `"x"`, `[] []`, `[`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{},"parents":[]}]`,
		`[{"uid":{"__entity":{"type":"App::User","id":"a"}},"attrs":{"x":1},"parents":[{"type":"G","id":"g"},{"__entity":{"type":"G","id":"h"}}]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{"e":{"__entity":{"type":"User","id":"b"}},"ip":{"__extn":{"fn":"ip","arg":"10.0.0.1"}},
		   "d":{"__extn":{"fn":"decimal","arg":"1.5"}},"s":[1,2,2,"x",true],"r":{"a":{"b":[]}}},"parents":[],"tags":{"t":"v"}}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{},"parents":[]},{"uid":{"type":"User","id":"a"},"attrs":{},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":null,"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{},"parents":null}]`,
		`[{"uid":null,"attrs":{},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{},"parents":[],"tags":null}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{"__entity":{"type":"U","id":"x"}},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{"n":-0},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{"n":1.5},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{"n":99999999999999999999},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{"n":null},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{"x":{"__extn":{"fn":"nope","arg":"1"}}},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{"x":{"__extn":{"fn":"ip","arg":1}}},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{"x":{"__entity":{"type":1,"id":"b"}}},"parents":[]}]`,
		`[{"uid":{"type":"1User","id":"a"},"attrs":{},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a","__entity":null},"attrs":{},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a","__entity":{"type":"V"}},"attrs":{},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"uid":{"type":"User","id":"b"},"attrs":{},"parents":[]}]`,
		`[{"UID":{"type":"User","id":"a"},"attrs":{},"parents":[]}]`,
		`[{"uid":{"type":"User","id":"a"},"attrs":{},"parents":[],"extra":[1,{"x":null}]}]`,
		"[{\"uid\":{\"type\":\"User\",\"id\":\"\xff\"},\"attrs\":{},\"parents\":[]}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mine, myErr := decodeEntities(b)
		var theirs types.EntityMap
		theirErr := theirs.UnmarshalJSON(b)
		if (myErr == nil) != (theirErr == nil) {
			t.Fatalf("%q: decodeEntities err %v, cedar-go err %v", b, myErr, theirErr)
		}
		if myErr != nil {
			return
		}
		if len(mine) != len(theirs) {
			t.Fatalf("%q: %d entities, cedar-go %d", b, len(mine), len(theirs))
		}
		for uid, e := range theirs {
			m, ok := mine[uid]
			if !ok || !m.Equal(e) {
				t.Fatalf("%q: entity %s: %+v, cedar-go %+v", b, uid, m, e)
			}
		}
	})
}

// FuzzRecordMatchesCedar holds decodeRecordJSON (request contexts) to
// cedar-go's types.Record.UnmarshalJSON.
func FuzzRecordMatchesCedar(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":{"__entity":{"type":"U","id":"x"}}}`, `{"__entity":{"type":"U","id":"x"}}`,
		`{"d":{"__extn":{"fn":"decimal","arg":"1.5"}},"s":[1,"x",[true]]}`, `{"a":1}{}`, `[]`, `{"a":-0}`, `{"a":1,"a":2}`, `{"n":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mine, myErr := decodeRecordJSON(b)
		var theirs types.Record
		theirErr := theirs.UnmarshalJSON(b)
		if (myErr == nil) != (theirErr == nil) {
			t.Fatalf("%q: decodeRecordJSON err %v, cedar-go err %v", b, myErr, theirErr)
		}
		if myErr == nil && !mine.Equal(theirs) {
			t.Fatalf("%q: %v, cedar-go %v", b, mine, theirs)
		}
	})
}
