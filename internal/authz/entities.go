package authz

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/go-json-experiment/json/jsontext"
)

// decodeEntities reads Cedar's JSON entity format into an EntityMap with
// the same results and refusals as cedar-go's types.EntityMap.UnmarshalJSON
// (FuzzEntitiesMatchCedar holds it to that), token by token on the same
// JSON tokenizer. cedar-go's reflection-driven decoding was half the cost
// of a decision over HTTP; this is the same format, read without it.
func decodeEntities(b []byte) (types.EntityMap, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	em := types.EntityMap{}
	switch dec.PeekKind() {
	case 'n':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
	case '[':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		for dec.PeekKind() != ']' {
			e, err := decodeEntity(dec)
			if err != nil {
				return nil, err
			}
			if _, dup := em[e.UID]; dup {
				return nil, fmt.Errorf("invalid entity: duplicate entity %s", e.UID)
			}
			em[e.UID] = e
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
	default:
		return nil, errNotEntityArray
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, errors.New("unexpected data after the entities")
	}
	return em, nil
}

var (
	errNotEntityArray = errors.New("entities must be a JSON array")
	errNotObject      = errors.New("expected a JSON object")
	errEntityNotFound = errors.New("json entity not found")
)

func decodeEntity(dec *jsontext.Decoder) (types.Entity, error) {
	if dec.PeekKind() != '{' {
		return types.Entity{}, errNotObject
	}
	if _, err := dec.ReadToken(); err != nil {
		return types.Entity{}, err
	}
	var e types.Entity
	var haveUID, haveParents, haveAttrs bool
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return e, err
		}
		name := tok.String() // a token is void after the next decoder call
		if dec.PeekKind() == 'n' && name != "tags" {
			// A null member is as good as a missing one (and then an error, below).
			if err := dec.SkipValue(); err != nil {
				return e, err
			}
			switch name {
			case "uid":
				haveUID = false
			case "parents":
				haveParents = false
			case "attrs":
				haveAttrs = false
			}
			continue
		}
		switch name {
		case "uid":
			if e.UID, err = decodeUID(dec); err != nil {
				return e, err
			}
			haveUID = true
		case "parents":
			if dec.PeekKind() != '[' {
				return e, errors.New(`"parents" must be an array`)
			}
			if _, err := dec.ReadToken(); err != nil {
				return e, err
			}
			var ps []types.EntityUID
			for dec.PeekKind() != ']' {
				uid, err := decodeUID(dec)
				if err != nil {
					return e, err
				}
				ps = append(ps, uid)
			}
			if _, err := dec.ReadToken(); err != nil {
				return e, err
			}
			e.Parents, haveParents = types.NewEntityUIDSet(ps...), true
		case "attrs":
			if e.Attributes, err = decodeRecord(dec); err != nil {
				return e, err
			}
			haveAttrs = true
		case "tags":
			if dec.PeekKind() == 'n' {
				return e, errors.New(`invalid entity: "tags" is null`)
			}
			if e.Tags, err = decodeRecord(dec); err != nil {
				return e, err
			}
		default:
			if err := dec.SkipValue(); err != nil {
				return e, err
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return e, err
	}
	switch {
	case !haveUID:
		return e, errors.New(`invalid entity: "uid" is missing or null`)
	case !haveParents:
		return e, errors.New(`invalid entity: "parents" is missing or null`)
	case !haveAttrs:
		return e, errors.New(`invalid entity: "attrs" is missing or null`)
	}
	return e, nil
}

// decodeUID reads {"type": …, "id": …} or {"__entity": {"type": …, "id": …}}.
func decodeUID(dec *jsontext.Decoder) (types.EntityUID, error) {
	if dec.PeekKind() != '{' {
		return types.EntityUID{}, errNotObject
	}
	if _, err := dec.ReadToken(); err != nil {
		return types.EntityUID{}, err
	}
	var typ, id *string
	var escaped bool
	var etyp, eid *string
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return types.EntityUID{}, err
		}
		switch name := tok.String(); name {
		case "type", "id":
			s, err := optionalString(dec)
			if err != nil {
				return types.EntityUID{}, err
			}
			if name == "type" {
				typ = s
			} else {
				id = s
			}
		case "__entity":
			if dec.PeekKind() == 'n' {
				if err := dec.SkipValue(); err != nil {
					return types.EntityUID{}, err
				}
				escaped = false
				continue
			}
			if dec.PeekKind() != '{' {
				return types.EntityUID{}, errNotObject
			}
			if _, err := dec.ReadToken(); err != nil {
				return types.EntityUID{}, err
			}
			etyp, eid, escaped = nil, nil, true
			for dec.PeekKind() != '}' {
				n, err := dec.ReadToken()
				if err != nil {
					return types.EntityUID{}, err
				}
				switch n.String() { // used before the next decoder call
				case "type":
					if etyp, err = optionalString(dec); err != nil {
						return types.EntityUID{}, err
					}
				case "id":
					if eid, err = optionalString(dec); err != nil {
						return types.EntityUID{}, err
					}
				default:
					if err := dec.SkipValue(); err != nil {
						return types.EntityUID{}, err
					}
				}
			}
			if _, err := dec.ReadToken(); err != nil {
				return types.EntityUID{}, err
			}
		default:
			if err := dec.SkipValue(); err != nil {
				return types.EntityUID{}, err
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return types.EntityUID{}, err
	}
	switch {
	case escaped:
		if etyp == nil || eid == nil {
			return types.EntityUID{}, errEntityNotFound
		}
		typ, id = etyp, eid
	case typ == nil || id == nil:
		return types.EntityUID{}, errEntityNotFound
	}
	t, err := types.NewEntityType(*typ)
	if err != nil {
		return types.EntityUID{}, err
	}
	return types.NewEntityUID(t, types.String(*id)), nil
}

// optionalString reads a JSON string, or null (nil).
func optionalString(dec *jsontext.Decoder) (*string, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case '"':
		s := tok.String()
		return &s, nil
	}
	return nil, fmt.Errorf("expected a string, not %v", tok.Kind())
}

// decodeRecordJSON reads one JSON record (a request's context) as
// types.Record.UnmarshalJSON does, on the same decoder as the entities.
func decodeRecordJSON(b []byte) (types.Record, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	rec, err := decodeRecord(dec)
	if err != nil {
		return types.Record{}, err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return types.Record{}, errors.New("unexpected data after the record")
	}
	return rec, nil
}

// decodeRecord reads a value that must be a record (not an escaped entity
// or extension value).
func decodeRecord(dec *jsontext.Decoder) (types.Record, error) {
	v, err := decodeValue(dec)
	if err != nil {
		return types.Record{}, err
	}
	rec, ok := v.(types.Record)
	if !ok {
		return types.Record{}, fmt.Errorf("%s is not a record", v.MarshalCedar())
	}
	if rec.Len() == 0 {
		rec = types.Record{}
	}
	return rec, nil
}

// decodeValue reads a Cedar value as types.UnmarshalJSON does: strings,
// booleans, Longs, sets, records, and the escapes __entity and __extn.
func decodeValue(dec *jsontext.Decoder) (types.Value, error) {
	switch kind := dec.PeekKind(); kind {
	case '"', 't', 'f', '0':
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		switch tok.Kind() {
		case '"':
			return types.String(tok.String()), nil
		case 't', 'f':
			return types.Boolean(tok.Bool()), nil
		}
		if tok.String() == "-0" {
			return nil, errors.New("long out of range: -0 is not a valid Long")
		}
		l, err := tok.Int()
		if err != nil {
			return nil, fmt.Errorf("long out of range: %w", err)
		}
		return types.Long(l), nil
	case '[':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		var vals []types.Value
		for dec.PeekKind() != ']' {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			vals = append(vals, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		return types.NewSet(vals...), nil
	case '{':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		m := types.RecordMap{}
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			name := types.String(tok.String())
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			m[name] = v
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		if len(m) == 1 {
			if v, ok := m["__entity"]; ok {
				if uid, ok := escapedEntity(v); ok {
					if _, err := types.NewEntityType(string(uid.Type)); err != nil {
						return nil, err
					}
					return uid, nil
				}
			} else if v, ok := m["__extn"]; ok {
				val, ok, err := escapedExtension(v)
				if err != nil {
					return nil, err
				}
				if ok {
					return val, nil
				}
			}
		}
		return types.NewRecord(m), nil
	case 0:
		// The decoder saw invalid JSON: ReadToken says what.
		_, err := dec.ReadToken()
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, err
	default:
		return nil, fmt.Errorf("unsupported type: %v", kind)
	}
}

// escapedEntity is {"type": String, "id": String} (other members ignored).
func escapedEntity(v types.Value) (types.EntityUID, bool) {
	rec, ok := v.(types.Record)
	if !ok {
		return types.EntityUID{}, false
	}
	typ, ok1 := rec.Get("type")
	id, ok2 := rec.Get("id")
	ts, ok3 := typ.(types.String)
	is, ok4 := id.(types.String)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return types.EntityUID{}, false
	}
	return types.NewEntityUID(types.EntityType(ts), is), true
}

// escapedExtension is {"fn": String, "arg": …}: an extension function call.
func escapedExtension(v types.Value) (types.Value, bool, error) {
	rec, ok := v.(types.Record)
	if !ok {
		return nil, false, nil
	}
	fnVal, ok1 := rec.Get("fn")
	arg, ok2 := rec.Get("arg")
	fn, ok3 := fnVal.(types.String)
	if !ok1 || !ok2 || !ok3 {
		return nil, false, nil
	}
	s, ok := arg.(types.String)
	var parse func(string) (types.Value, error)
	switch fn {
	case "ip":
		parse = func(s string) (types.Value, error) { return types.ParseIPAddr(s) }
	case "decimal":
		parse = func(s string) (types.Value, error) { return types.ParseDecimal(s) }
	case "datetime":
		parse = func(s string) (types.Value, error) { return types.ParseDatetime(s) }
	case "duration":
		parse = func(s string) (types.Value, error) { return types.ParseDuration(s) }
	default:
		return nil, false, errors.New("invalid extension")
	}
	if !ok {
		return nil, false, fmt.Errorf("invalid extension: argument to %s must be a string", fn)
	}
	val, err := parse(string(s))
	if err != nil {
		return nil, false, err
	}
	return val, true, nil
}
