// Package chain computes the hash chain that makes the SQL event store's log
// tamper-evident. It depends on the standard library only, so an auditor can
// read it whole and re-implement it.
//
// # The hash of an event
//
// Every event carries a 32-byte SHA-256 hash over the previous event's hash
// and the event's own fields:
//
//	hash = SHA-256( prev_hash            32 bytes (32 zero bytes for the first event)
//	              || u64(position)
//	              || u64(len(event_id)) || event_id
//	              || u64(len(stream))   || stream
//	              || u64(version)
//	              || u64(len(type))     || type
//	              || u64(len(data))     || data
//	              || u64(len(metadata)) || metadata
//	              || i64(created_at) )
//
// where u64 and i64 are 8-byte big-endian integers (i64 in two's complement),
// event_id is the canonical lower-case UUID text (36 bytes), stream and type
// are their UTF-8 bytes, data and metadata are the stored JSON bytes exactly
// as appended, position is the event's global position, version its 0-based
// revision in its stream, and created_at its commit time in microseconds
// since the Unix epoch (UTC). Every variable-length field is preceded by its
// length, so no two different events encode to the same bytes.
//
// "Previous event" means the event with the next lower position that is
// stored: PostgreSQL may leave positions unused (a rolled-back batch), and the
// chain simply links the stored events in position order. A deleted event
// therefore breaks the chain at the event after it, an edited or inserted
// event breaks it at itself, and two swapped events break it at the first of
// them. An event appended at the end by someone who can write the database
// can be given a valid hash (the chain has no secret): record the head
// (position and hash) elsewhere and check it later (Verifier.Expect).
package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"strings"

	"github.com/auraos/realtime/domain"
)

// Size is the length of a hash in bytes.
const Size = sha256.Size

// Hash is one link of the chain. The zero Hash is the previous hash of the
// first event.
type Hash [Size]byte

// String returns h as 64 lower-case hexadecimal digits.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is the zero Hash.
func (h Hash) IsZero() bool { return h == Hash{} }

// ParseHash reads 64 hexadecimal digits (either case). It returns an
// EINVALID *domain.Error for anything else.
func ParseHash(s string) (Hash, error) {
	var h Hash
	s = strings.TrimSpace(s)
	if len(s) != 2*Size {
		return h, domain.Errorf(domain.EINVALID, "hash %q is not %d hexadecimal digits", s, 2*Size)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, domain.Errorf(domain.EINVALID, "hash %q is not %d hexadecimal digits", s, 2*Size)
	}
	return h, nil
}

// FromBytes returns b as a Hash; ok is false when b is not Size bytes long
// (a missing or damaged hash column).
func FromBytes(b []byte) (h Hash, ok bool) {
	if len(b) != Size {
		return h, false
	}
	copy(h[:], b)
	return h, true
}

// Event is what the chain covers of one event. Data and Metadata are the
// stored bytes; Time is the commit time in Unix microseconds.
type Event struct {
	Position uint64
	ID       string
	Stream   string
	Version  uint64
	Type     string
	Data     []byte
	Metadata []byte
	Time     int64
}

// Hasher computes links of the chain. It reuses its buffers, so computing a
// link allocates nothing; it is not safe for concurrent use.
type Hasher struct {
	h       hash.Hash
	buf     [8]byte
	sum     []byte
	scratch []byte
}

// NewHasher returns a Hasher.
func NewHasher() *Hasher { return &Hasher{h: sha256.New(), sum: make([]byte, 0, Size)} }

// Next returns the hash of e following prev, as the package documentation
// defines it.
func (x *Hasher) Next(prev Hash, e *Event) Hash {
	x.h.Reset()
	x.scratch = append(x.scratch[:0], prev[:]...) // prev itself would escape through the interface call
	x.h.Write(x.scratch)
	x.u64(e.Position)
	x.str(e.ID)
	x.str(e.Stream)
	x.u64(e.Version)
	x.str(e.Type)
	x.bytes(e.Data)
	x.bytes(e.Metadata)
	x.u64(uint64(e.Time))
	var out Hash
	x.sum = x.h.Sum(x.sum[:0])
	copy(out[:], x.sum)
	return out
}

func (x *Hasher) u64(v uint64) {
	binary.BigEndian.PutUint64(x.buf[:], v)
	x.h.Write(x.buf[:])
}

func (x *Hasher) str(s string) {
	x.u64(uint64(len(s)))
	x.scratch = append(x.scratch[:0], s...) // a reused copy: no allocation per string
	x.h.Write(x.scratch)
}

func (x *Hasher) bytes(b []byte) {
	x.u64(uint64(len(b)))
	x.h.Write(b)
}

// Next returns the hash of e following prev. It is Hasher.Next for a single
// use; loops should keep one Hasher.
func Next(prev Hash, e *Event) Hash { return NewHasher().Next(prev, e) }
