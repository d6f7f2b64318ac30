package main

import (
	"bytes"
	"encoding"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"reflect"
	"sort"
	"strings"
)

// capture keeps the body of the last JSON answer, so an operation's decoded value can be
// compared with the JSON it came from (see drift). Streams (SSE, WebSockets) pass untouched.
type capture struct{}

var lastBody []byte

func (capture) RoundTrip(req *http.Request) (*http.Response, error) {
	lastBody = nil
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return res, err
	}
	ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if ct != "application/json" || res.StatusCode == http.StatusSwitchingProtocols {
		return res, nil
	}
	data, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	lastBody = data
	res.Body = io.NopCloser(bytes.NewReader(data))
	return res, nil
}

// An operation's decoded answer and the JSON it was decoded from.
type notedValue struct {
	typ  reflect.Type
	body []byte
}

var noted *notedValue

// note records v (an answer just decoded by codersdk or by raw) with the body it came from.
func note(v any) {
	if v == nil || lastBody == nil {
		return
	}
	noted = &notedValue{typ: reflect.TypeOf(v), body: lastBody}
}

func (n *notedValue) drift() []string {
	var v any
	if err := json.Unmarshal(n.body, &v); err != nil {
		return nil
	}
	seen := map[string]bool{}
	compare("", n.typ, v, seen)
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

var (
	jsonUnmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
	textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

type field struct {
	typ       reflect.Type
	omitempty bool
}

// fields are the JSON names of a struct type's fields as encoding/json sees them.
func fields(t reflect.Type, into map[string]field) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				fields(et, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = field{typ: f.Type, omitempty: strings.Contains(","+opts+",", ",omitempty,")}
	}
}

func nilable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return true
	}
	return false
}

// compare walks the JSON value v against type t and records where they differ in shape.
func compare(at string, t reflect.Type, v any, seen map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil || t.Kind() == reflect.Interface {
		return
	}
	if t.Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		fs := map[string]field{}
		fields(t, fs)
		for name, f := range fs {
			val, present := obj[name]
			switch {
			case !present && !f.omitempty:
				seen[at+"."+name+": missing (upstream always sends it)"] = true
			case present && val == nil && f.omitempty:
				seen[at+"."+name+": null where upstream omits it"] = true
			case present && val == nil && !nilable(f.typ):
				seen[at+"."+name+": null where upstream always sends a "+f.typ.String()] = true
			case present:
				compare(at+"."+name, f.typ, val, seen)
			}
		}
		for name := range obj {
			if _, ok := fs[name]; !ok {
				seen[at+"."+name+": not a field of upstream's "+t.String()] = true
			}
		}
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			return
		}
		for _, e := range arr {
			compare(at+"[]", t.Elem(), e, seen)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for _, e := range m {
			compare(at+"{}", t.Elem(), e, seen)
		}
	}
}
