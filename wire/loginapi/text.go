package loginapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// AuthScheme is the scheme of the Authorization header of the user
// endpoints: "Authorization: Parley <credential token>". The credential is a
// bearer token for its lifetime (CredentialTTL): serve the API over TLS.
const AuthScheme = "Parley"

// JSONErrorMessage turns a decoding error into one line that does not quote
// the body (which may hold a password).
func JSONErrorMessage(err error) string {
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "request body must be a JSON object"
		}
		want := "a string"
		if typ.Type != nil && typ.Type.Kind() != reflect.String {
			want = "a " + typ.Type.Kind().String()
			switch typ.Type.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
				reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				want = "an integer"
			}
		}
		return fmt.Sprintf("field %q must be %s, not %s", typ.Field, want, typ.Value)
	case errors.As(err, &syn):
		return fmt.Sprintf("request body is not valid JSON (error at byte %d)", syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "request body is not valid JSON (unexpected end)"
	}
	return "request body is not a valid JSON object"
}

// Sanitize keeps a client-supplied token printable and short for messages.
func Sanitize(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return '?'
		}
		return r
	}, s)
}
