package shred

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/auraos/realtime/domain"
)

// An encrypted field is stored as a JSON string in place of the field's
// value:
//
//	"\u0000enc1:<key id>:<base64 of nonce ‖ AES-256-GCM ciphertext ‖ tag>"
//
// The plaintext is the field's original JSON (a string, null or an object),
// so every JSON type round-trips. The key id names the data key (one per
// user and key generation); the additional data binds the ciphertext to the
// user and the field's path, so it cannot be moved to another field or
// user. The leading NUL cannot start a clear value: validation refuses
// control characters in every personal text field, and free-form data is
// encrypted as a whole.
//
// jsonMarker is how that prefix begins the JSON string in stored data, as
// encoding/json writes it: readers look for it before parsing anything.
var jsonMarker = []byte(`"\u0000enc1:`)

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

// additionalData binds a field's ciphertext to its user and path.
func additionalData(userID string, path []string) []byte {
	return []byte(userID + "\x00" + strings.Join(path, "."))
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
func parseEncrypted(v json.RawMessage) (keyID string, sealed []byte, ok bool, err error) {
	if !bytes.HasPrefix(v, jsonMarker) || len(v) < len(jsonMarker)+1 || v[len(v)-1] != '"' {
		return "", nil, false, nil
	}
	body := v[len(jsonMarker) : len(v)-1]
	i := bytes.IndexByte(body, ':')
	if i <= 0 {
		return "", nil, true, fmt.Errorf("encrypted value has no key id")
	}
	sealed, err = base64.RawStdEncoding.AppendDecode(nil, body[i+1:])
	if err != nil {
		return "", nil, true, fmt.Errorf("encrypted value is not base64: %w", err)
	}
	return string(body[:i]), sealed, true, nil
}

// object is a JSON object whose members stay undecoded.
type object map[string]json.RawMessage

// subjectOf returns the user an event's personal data is about, or "" when
// it is about nobody (no subject, or an assistant's reply).
func subjectOf(pd domain.PersonalData, top object) string {
	if pd.NotAPerson != "" {
		var not bool
		if raw, ok := top[pd.NotAPerson]; ok && json.Unmarshal(raw, &not) == nil && not {
			return ""
		}
	}
	var subject string
	if raw, ok := top[pd.Subject]; !ok || json.Unmarshal(raw, &subject) != nil {
		return ""
	}
	return subject
}

// fieldRef is where one personal field lives in a parsed event: the object
// holding it and its name there.
type fieldRef struct {
	field  domain.PersonalField
	parent object
	name   string
}

// parsedEvent is an event's data opened down to its personal fields.
type parsedEvent struct {
	top     object
	nested  map[string]object // objects on the way to nested fields, by top-level name
	subject string
	refs    []fieldRef
}

// parseEvent opens data down to the personal fields pd names. Fields whose
// parent object is missing are skipped; absent fields are listed too (with
// no value), so that forgetting can set every field to its placeholder.
func parseEvent(pd domain.PersonalData, data []byte) (*parsedEvent, error) {
	var top object
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	p := &parsedEvent{top: top, subject: subjectOf(pd, top)}
	for _, f := range pd.Fields {
		parent := top
		for _, step := range f.Path[:len(f.Path)-1] {
			if child, ok := p.nested[step]; ok {
				parent = child
				continue
			}
			raw, ok := parent[step]
			var child object
			if !ok || json.Unmarshal(raw, &child) != nil || child == nil {
				parent = nil
				break
			}
			if p.nested == nil {
				p.nested = map[string]object{}
			}
			p.nested[step] = child
			parent = child
		}
		if parent != nil {
			p.refs = append(p.refs, fieldRef{field: f, parent: parent, name: f.Path[len(f.Path)-1]})
		}
	}
	return p, nil
}

// marshal writes the event back, nested objects first.
func (p *parsedEvent) marshal() (json.RawMessage, error) {
	for name, child := range p.nested {
		b, err := json.Marshal(child)
		if err != nil {
			return nil, err
		}
		p.top[name] = b
	}
	return json.Marshal(p.top)
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
	for _, r := range p.refs {
		v, ok := r.parent[r.name]
		if !ok {
			continue
		}
		present = true
		if _, _, enc, _ := parseEncrypted(v); enc {
			return p.subject, Encrypted
		}
	}
	if !present {
		return "", NoPersonalData
	}
	return p.subject, Clear
}
