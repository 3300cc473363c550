package login

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parley/parley/wire/loginapi"
)

// duplicateKey walks the first JSON value in body and returns a message
// naming the first object key that occurs twice in one object, at any
// depth, or "" when there is none. Keys that differ only in case count as
// duplicates, since encoding/json matches struct fields case-insensitively
// (and would let the last one win). A body that is not valid JSON yields "":
// json.Unmarshal reports that.
func duplicateKey(body []byte) string {
	if !json.Valid(body) {
		return ""
	}
	type frame struct {
		object  bool
		wantKey bool // object: the next token is a key or '}'
		keys    map[string]struct{}
		key     string // object: the current key
		index   int    // array: the current element
	}
	var stack []*frame
	// path names key in the innermost object, e.g. items[0].to_user.
	path := func(key string) string {
		var b strings.Builder
		for _, f := range stack[:len(stack)-1] {
			if f.object {
				b.WriteString("." + loginapi.Sanitize(f.key))
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		b.WriteString("." + loginapi.Sanitize(key))
		return strings.TrimPrefix(b.String(), ".")
	}
	// valueDone moves the enclosing container past one complete value.
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.object {
			top.wantKey = true
		} else {
			top.index++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers are not parsed as floats
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				valueDone()
			} else if k, ok := tok.(string); ok {
				fk := foldKey(k)
				if _, dup := top.keys[fk]; dup {
					if len(stack) == 1 {
						return fmt.Sprintf("duplicate key %q in request body", loginapi.Sanitize(k))
					}
					return fmt.Sprintf("duplicate key %q in request body at %s", loginapi.Sanitize(k), path(k))
				}
				top.keys[fk] = struct{}{}
				top.key = k
				top.wantKey = false
			} else {
				return ""
			}
		} else {
			switch tok {
			case json.Delim('{'):
				stack = append(stack, &frame{object: true, wantKey: true, keys: map[string]struct{}{}})
			case json.Delim('['):
				stack = append(stack, &frame{})
			case json.Delim(']'):
				stack = stack[:len(stack)-1]
				valueDone()
			default:
				valueDone()
			}
		}
		if len(stack) == 0 {
			return ""
		}
	}
}

// foldKey maps a key to a representative of its case-folding class (each
// rune to the smallest rune of its unicode.SimpleFold orbit, which for an
// ASCII letter is its upper case), so that keys encoding/json would match to
// one field compare equal.
func foldKey(k string) string {
	ascii := true
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(k)
	}
	var b strings.Builder
	for _, r := range k {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}
