package shred

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/auraos/realtime/domain"
)

// An encrypted field is stored as a JSON string in place of the field's
// value:
//
//	"\u0000enc1:<key id>:<base64 of nonce ‖ AES-256-GCM ciphertext ‖ tag>"
//
// in the event's first present personal field, and "\u0000enc1:=" in its
// other personal fields: one ciphertext per event, whose plaintext is a JSON
// object of the present personal fields' original values by name (every
// JSON type round-trips). The key id names the data key (one per user and
// key generation); the additional data binds the ciphertext to the user and
// the field holding it, so it cannot be moved to another event's user.
// The leading NUL cannot start a clear value: validation refuses control
// characters in every personal text field, and free-form data is encrypted
// as a whole.
//
// jsonMarker is how that prefix begins the JSON string in stored data, as
// encoding/json writes it: readers look for it before parsing anything.
var jsonMarker = []byte(`"\u0000enc1:`)

// indexMarker returns the index of the first jsonMarker in data, or -1. It
// looks for the backslash that follows the quote: a quote is in every JSON
// string, a backslash in few, so the byte search skips most of the data at
// once where bytes.Index would stop at every quote.
func indexMarker(data []byte) int {
	for off := 0; ; {
		i := bytes.Index(data[off:], jsonMarker[1:])
		if i < 0 {
			return -1
		}
		if i += off; i > 0 && data[i-1] == '"' {
			return i - 1
		}
		off = i + 1
	}
}

// jsonRef is a personal field whose value is in the event's ciphertext.
var jsonRef = []byte(`"\u0000enc1:="`)

// keySize is the size of a data key and of a key-encryption key.
const keySize = 32

// newAEAD returns AES-256-GCM under key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("a key must be %d bytes, not %d", keySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts plain under aead with a random nonce and returns nonce ‖
// ciphertext.
func seal(aead cipher.AEAD, plain, ad []byte) []byte {
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		panic("shred: no randomness: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return aead.Seal(out, out, plain, ad)
}

// open reverses seal.
func open(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, fmt.Errorf("ciphertext too short")
	}
	return aead.Open(nil, sealed[:n], sealed[n:], ad)
}

// additionalData binds a field's ciphertext to its user and path; it
// appends to buf, so a caller can reuse one buffer.
func additionalData(buf []byte, userID string, path []string) []byte {
	buf = append(append(buf[:0], userID...), 0)
	for i, step := range path {
		if i > 0 {
			buf = append(buf, '.')
		}
		buf = append(buf, step...)
	}
	return buf
}

// encryptedValue is the stored JSON string of an encrypted field.
func encryptedValue(keyID string, sealed []byte) json.RawMessage {
	b64 := base64.RawStdEncoding
	out := make([]byte, 0, len(jsonMarker)+len(keyID)+2+b64.EncodedLen(len(sealed))+1)
	out = append(out, jsonMarker...)
	out = append(out, keyID...)
	out = append(out, ':')
	out = b64.AppendEncode(out, sealed)
	return append(out, '"')
}

// parseEncrypted reads a stored field value: ok is false for a clear value.
// sealed is appended to buf.
func parseEncrypted(buf []byte, v json.RawMessage) (keyID []byte, sealed []byte, ok bool, err error) {
	if !bytes.HasPrefix(v, jsonMarker) || len(v) < len(jsonMarker)+1 || v[len(v)-1] != '"' {
		return nil, nil, false, nil
	}
	body := v[len(jsonMarker) : len(v)-1]
	i := bytes.IndexByte(body, ':')
	if i <= 0 {
		return nil, nil, true, fmt.Errorf("encrypted value has no key id")
	}
	sealed, err = base64.RawStdEncoding.AppendDecode(buf[:0], body[i+1:])
	if err != nil {
		return nil, nil, true, fmt.Errorf("encrypted value is not base64: %w", err)
	}
	return body[:i], sealed, true, nil
}

// member is one member of a JSON object: its name and where its value
// lies in the data.
type member struct {
	name       []byte // the name as written, quotes excluded
	escaped    bool   // the name has escapes: compare its decoded form
	start, end int
}

// is reports whether m is named name.
func (m member) is(name string) bool {
	if !m.escaped {
		return string(m.name) == name // compiled without allocating
	}
	decoded, err := stringValue(append(append([]byte{'"'}, m.name...), '"'))
	return err == nil && decoded == name
}

// Events are opened with a small scanner rather than encoding/json: it
// finds the members of the top-level object (and of the objects on the way
// to nested fields) without decoding or allocating for the rest, so that
// encryption and decryption cost one pass over the bytes plus the
// ciphertexts, and the data is rewritten by splicing the changed values in.

func skipSpace(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string starting at d[i].
func skipString(d []byte, i int) (int, error) {
	for j := i + 1; j < len(d); j++ {
		switch d[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errMalformed
}

// skipValue returns the index after the JSON value starting at d[i].
func skipValue(d []byte, i int) (int, error) {
	if i >= len(d) {
		return 0, errMalformed
	}
	switch d[i] {
	case '"':
		return skipString(d, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(d); {
			switch d[j] {
			case '"':
				var err error
				if j, err = skipString(d, j); err != nil {
					return 0, err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1, nil
				}
			}
			j++
		}
		return 0, errMalformed
	}
	j := i
	for j < len(d) && d[j] != ',' && d[j] != '}' && d[j] != ']' && d[j] != ' ' && d[j] != '\n' && d[j] != '\t' && d[j] != '\r' {
		j++
	}
	if j == i {
		return 0, errMalformed
	}
	return j, nil
}

var errMalformed = fmt.Errorf("event data is not a JSON object")

// members scans the JSON object starting at d[i] and returns its members
// and the index of its closing brace.
func members(d []byte, i int) ([]member, int, error) {
	i = skipSpace(d, i)
	if i >= len(d) || d[i] != '{' {
		return nil, 0, errMalformed
	}
	ms := make([]member, 0, 12)
	i = skipSpace(d, i+1)
	if i < len(d) && d[i] == '}' {
		return ms, i, nil
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return nil, 0, errMalformed
		}
		ks := i
		var err error
		if i, err = skipString(d, i); err != nil {
			return nil, 0, err
		}
		name := d[ks+1 : i-1]
		escaped := bytes.IndexByte(name, '\\') >= 0
		i = skipSpace(d, i)
		if i >= len(d) || d[i] != ':' {
			return nil, 0, errMalformed
		}
		vs := skipSpace(d, i+1)
		ve, err := skipValue(d, vs)
		if err != nil {
			return nil, 0, err
		}
		ms = append(ms, member{name: name, escaped: escaped, start: vs, end: ve})
		i = skipSpace(d, ve)
		if i < len(d) && d[i] == ',' {
			i = skipSpace(d, i+1)
			continue
		}
		if i < len(d) && d[i] == '}' {
			return ms, i, nil
		}
		return nil, 0, errMalformed
	}
}

// stringValue decodes a JSON string; quick when it has no escapes.
func stringValue(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errMalformed
	}
	return s, nil
}

// find returns the last member named name (the one encoding/json would
// decode).
func find(ms []member, name string) (member, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].is(name) {
			return ms[i], true
		}
	}
	return member{}, false
}

// fieldSpan is where one personal field lies in the data: its value's span
// when present, else the closing brace of the object that would hold it.
type fieldSpan struct {
	field       domain.PersonalField
	present     bool
	start, end  int
	parentClose int
	parentEmpty bool
}

// parsedEvent is an event's data with its personal fields located.
type parsedEvent struct {
	data    []byte
	subject string
	fields  []fieldSpan
}

// parseEvent locates the personal fields pd names in data and whom they are
// about ("" for nobody: no subject, or an assistant's reply). Fields whose
// parent object is missing are left out; absent fields are listed too, so
// that forgetting can set every field to its placeholder.
func parseEvent(pd domain.PersonalData, data []byte) (*parsedEvent, error) {
	top, topClose, err := members(data, 0)
	if err != nil {
		return nil, err
	}
	p := &parsedEvent{data: data}
	if pd.NotAPerson != "" {
		if m, ok := find(top, pd.NotAPerson); ok && string(data[m.start:m.end]) == "true" {
			return p, nil
		}
	}
	if m, ok := find(top, pd.Subject); ok && data[m.start] == '"' {
		if p.subject, err = stringValue(data[m.start:m.end]); err != nil {
			return nil, err
		}
	}
	// The nested fields of an event type share one parent object (the
	// profile): it is scanned once.
	var nestedStep string
	var nested []member
	nestedClose := -1
	p.fields = make([]fieldSpan, 0, len(pd.Fields))
	for _, f := range pd.Fields {
		ms, closing := top, topClose
		if len(f.Path) == 2 {
			if step := f.Path[0]; step != nestedStep {
				nestedStep, nested, nestedClose = step, nil, -1
				if m, ok := find(top, step); ok && data[m.start] == '{' {
					if nested, nestedClose, err = members(data, m.start); err != nil {
						return nil, err
					}
				}
			}
			ms, closing = nested, nestedClose
			if closing < 0 {
				continue
			}
		}
		fs := fieldSpan{field: f, parentClose: closing, parentEmpty: len(ms) == 0}
		if m, ok := find(ms, f.Path[len(f.Path)-1]); ok {
			fs.present, fs.start, fs.end = true, m.start, m.end
		}
		p.fields = append(p.fields, fs)
	}
	return p, nil
}

// edit replaces data[start:end] with with; start == end inserts.
type edit struct {
	start, end int
	with       []byte
}

// splice applies edits (in any order, not overlapping) to data.
func splice(data []byte, edits []edit) json.RawMessage {
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	n := len(data)
	for _, e := range edits {
		n += len(e.with) - (e.end - e.start)
	}
	out := make([]byte, 0, n)
	at := 0
	for _, e := range edits {
		out = append(out, data[at:e.start]...)
		out = append(out, e.with...)
		at = e.end
	}
	return append(out, data[at:]...)
}

// placeholders returns the edits that set every personal field to its
// placeholder: replaced where present, added where absent.
func (p *parsedEvent) placeholders() []edit {
	var edits []edit
	added := map[int]bool{} // parents that received a member already
	for _, f := range p.fields {
		if f.present {
			edits = append(edits, edit{f.start, f.end, f.field.Placeholder})
			continue
		}
		var b []byte
		if !f.parentEmpty || added[f.parentClose] {
			b = append(b, ',')
		}
		name, _ := json.Marshal(f.field.Path[len(f.field.Path)-1])
		b = append(append(append(b, name...), ':'), f.field.Placeholder...)
		edits = append(edits, edit{f.parentClose, f.parentClose, b})
		added[f.parentClose] = true
	}
	return edits
}

// FieldState says how an event stores its personal fields.
type FieldState int

// The states of an event's personal fields.
const (
	// NoPersonalData: the event type carries none, or the event is about
	// nobody.
	NoPersonalData FieldState = iota
	// Encrypted: its personal fields are stored encrypted.
	Encrypted
	// Clear: its personal fields are stored in clear (written before
	// encryption existed); forgetting cannot erase them from the log.
	Clear
)

// Inspect reports, without any key, whom a stored event's personal data is
// about and whether it is stored encrypted or in clear. Data that does not
// decode is about nobody.
func Inspect(eventType string, data []byte) (subject string, state FieldState) {
	pd, ok := domain.PersonalDataOf(eventType)
	if !ok {
		return "", NoPersonalData
	}
	p, err := parseEvent(pd, data)
	if err != nil || p.subject == "" {
		return "", NoPersonalData
	}
	present := false
	for _, f := range p.fields {
		if !f.present {
			continue
		}
		present = true
		if bytes.HasPrefix(p.data[f.start:f.end], jsonMarker) {
			return p.subject, Encrypted
		}
	}
	if !present {
		return "", NoPersonalData
	}
	return p.subject, Clear
}
