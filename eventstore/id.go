package eventstore

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"time"
)

// idNamespace is the UUIDv5 namespace of AuraOS event ids.
var idNamespace = [16]byte{0x6f, 0x1c, 0x2b, 0x8e, 0x3d, 0x4a, 0x4f, 0x5b, 0x9a, 0x7e, 0x21, 0x0c, 0x55, 0x8d, 0x13, 0xa4}

// NewID returns a new time-ordered (version 7) UUID: 48 bits of unix
// milliseconds, then 74 random bits. Ids made later sort later, so a store's
// id index grows at its end instead of being written all over.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[6:]); err != nil {
		panic("eventstore: crypto/rand failed: " + err.Error())
	}
	ms := uint64(time.Now().UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (8 * (5 - i)))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// NameID returns a name-based (version 5) UUID for the given parts. The same
// parts always give the same id, which is what makes a retried command's
// append idempotent. Parts are length-prefixed, so ("ab","c") and ("a","bc")
// differ.
func NameID(parts ...string) string {
	h := sha1.New()
	h.Write(idNamespace[:])
	for _, p := range parts {
		var n [8]byte
		l := uint64(len(p))
		for i := range n {
			n[i] = byte(l >> (8 * (7 - i)))
		}
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// IsUUID reports whether s is a UUID in canonical lower-case form.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdef", rune(c)) {
				return false
			}
		}
	}
	return true
}

// OrderedNameID is NameID for ids that should sort by time: when base is a
// time-ordered (version 7) UUID, such as a command's correlation id, the
// result keeps its 48-bit millisecond prefix and takes the rest from the
// name hash (a version 8 UUID). The same base and parts always give the same
// id, and ids derived from later bases sort later, so a store's id index grows
// at its end. Other bases give NameID's result.
func OrderedNameID(base string, parts ...string) string {
	id := NameID(append([]string{base}, parts...)...)
	if !IsUUID(base) || base[14] != '7' {
		return id
	}
	// The first 48 bits are the 8+4 hex digits before the second dash.
	b := []byte(base[:13] + id[13:])
	b[14] = '8' // version 8: a custom layout
	return string(b)
}
