package api

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/presave/presave/internal/presave"
)

// What PostgreSQL can store as text: valid UTF-8 without NUL (it refuses
// both with an error, which would otherwise surface as a 500). Every text
// the API accepts passes through here first: JSON bodies in decodeJSON
// (before and after decoding) and forms and queries in checkValues (what
// a provider sends back is the connect use case's: presave.Storable).

// errText refuses a client's text field that PostgreSQL cannot store.
func errText(field string) *Error {
	return badRequest("invalid_text", "%s must be valid UTF-8 text without NUL characters.", field)
}

// checkStrings walks a decoded JSON value and refuses the first string
// (or map key) PostgreSQL cannot store, naming its field as a JSON path.
// encoding/json turns invalid UTF-8 into U+FFFD on its own, so decodeJSON
// checks the raw body for that; what is left here is "\u0000".
func checkStrings(path string, v reflect.Value) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return checkStrings(path, v.Elem())
		}
	case reflect.String:
		if !presave.Storable(v.String()) {
			return errText(path)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := checkStrings(path+"["+strconv.Itoa(i)+"]", v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			name := path + "." + k.String()
			if k.Kind() == reflect.String && !presave.Storable(k.String()) {
				return errText(path)
			}
			if err := checkStrings(name, v.MapIndex(k)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if path != "" {
				name = path + "." + name
			}
			if err := checkStrings(name, v.Field(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkValues refuses a form or query whose names or values PostgreSQL
// cannot store (a %00 or a stray %FF).
func checkValues(vals url.Values) error {
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !presave.Storable(k) {
			return errText("a field name")
		}
		for _, v := range vals[k] {
			if !presave.Storable(v) {
				return errText(k)
			}
		}
	}
	return nil
}

// invalidUTF8Field names the JSON field holding the first invalid UTF-8
// in body (a JSON path such as "spotify.album_ids[0]"), or "" when it
// cannot tell (the bytes are outside any string, say).
func invalidUTF8Field(body []byte) string {
	bad := -1
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && n <= 1 {
			bad = i
			break
		}
		i += n
	}
	if bad < 0 {
		return ""
	}
	type frame struct {
		object  bool
		key     string // the object's current key
		index   int    // the array's current index
		wantKey bool
	}
	var stack []frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.object {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		top := len(stack) - 1
		isKey := top >= 0 && stack[top].object && stack[top].wantKey
		if s, ok := tok.(string); ok && isKey {
			stack[top].key, stack[top].wantKey = s, false
		}
		if dec.InputOffset() > int64(bad) {
			if isKey {
				return path() + " (a field name)"
			}
			return path()
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
			top--
		default:
			if isKey {
				continue
			}
		}
		// A value ended: the enclosing container moves on.
		if top >= 0 {
			if stack[top].object {
				stack[top].wantKey = true
			} else {
				stack[top].index++
			}
		}
	}
}
