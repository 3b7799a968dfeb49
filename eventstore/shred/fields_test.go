package shred

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/auraos/realtime/domain"
)

// The scanner finds the same members encoding/json decodes, whatever the
// spacing, escapes and nesting.
func TestMembersAgreeWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{}`,
		` { "a" : 1 , "b":"x\"}y" ,"c":{"d":[1,{"e":"}"}]},"f":null,"g":true,"a":2 } `,
		`{"k\u0061y":"v","t":"\\"}`,
		`{"profile":{"uid":"u","email":"e@x"},"userId":"u"}`,
	} {
		ms, _, err := members([]byte(in), 0)
		if err != nil {
			t.Fatalf("members(%s): %v", in, err)
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		for name, raw := range want {
			m, ok := find(ms, name)
			if !ok || string(in[m.start:m.end]) != string(raw) {
				t.Errorf("%s: member %q = %q, encoding/json %s", in, name, in[m.start:m.end], raw)
			}
		}
	}
	for _, bad := range []string{``, `[]`, `{"a"}`, `{"a":}`, `{"a":"x}`, `{"a":1,}`, `{"a":{"b":1}`} {
		if _, _, err := members([]byte(bad), 0); err == nil {
			t.Errorf("members(%s) accepted malformed data", bad)
		}
	}
}

// Placeholders replace present fields and add absent ones, giving JSON that
// decodes to the placeholders.
func TestPlaceholdersAddAbsentFields(t *testing.T) {
	for _, tc := range []struct{ typ, in string }{
		{domain.TypePresenceJoined, `{"userId":"u","profile":{"uid":"u","email":"e@x"},"status":"online"}`},
		{domain.TypePresenceJoined, `{"userId":"u","profile":{}}`},
		{domain.TypeMessagePosted, `{"userId":"u","message":"hi","userAvatar":null}`},
		{domain.TypeNotificationSent, `{"from":"u","to":"v","title":"t","message":"m"}`},
	} {
		pd, _ := domain.PersonalDataOf(tc.typ)
		p, err := parseEvent(pd, []byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		out := splice(p.data, p.placeholders())
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: placeholders give %s: %v", tc.in, out, err)
		}
		for _, f := range pd.Fields {
			var v any = got
			for _, step := range f.Path {
				v = v.(map[string]any)[step]
			}
			var want any
			_ = json.Unmarshal(f.Placeholder, &want)
			if v != want {
				t.Errorf("%s: %v = %v, want the placeholder %s (%s)", tc.in, f.Path, v, f.Placeholder, out)
			}
		}
	}
}

func FuzzMembers(f *testing.F) {
	f.Add(`{"a":1,"b":{"c":"d"}}`)
	f.Add(`{"x":"\"}"}`)
	f.Fuzz(func(t *testing.T, in string) {
		ms, _, err := members([]byte(in), 0)
		var want map[string]json.RawMessage
		if json.Unmarshal([]byte(in), &want) != nil || err != nil {
			return // only valid objects the scanner reads must agree
		}
		for name, raw := range want {
			m, ok := find(ms, name)
			if !ok || !json.Valid([]byte(in[m.start:m.end])) || (string(raw) != in[m.start:m.end] && json.Valid(raw)) {
				var a, b any
				_ = json.Unmarshal(raw, &a)
				_ = json.Unmarshal([]byte(in[m.start:m.end]), &b)
				if !ok || !jsonEqual(a, b) {
					t.Fatalf("%q: member %q = %q, encoding/json %s", in, name, in[m.start:m.end], raw)
				}
			}
		}
	})
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// indexMarker finds what bytes.Index finds.
func TestIndexMarkerAgreesWithBytesIndex(t *testing.T) {
	m := string(jsonMarker)
	for _, s := range []string{"", `{"a":"b"}`, m, `{"a":` + m + `k:x"}`, `{"a":"\u0000enc1:` + `"}`, `\u0000enc1:` + m,
		`x\u0000enc1:"` + m, `{"a":"\\u0000enc1:x"}`, `\u0000enc1:`, `"\u0000enc1`} {
		if got, want := indexMarker([]byte(s)), bytes.Index([]byte(s), jsonMarker); got != want {
			t.Errorf("indexMarker(%q) = %d, bytes.Index %d", s, got, want)
		}
	}
}
