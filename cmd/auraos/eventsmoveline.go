package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/auraos/realtime/eventstore/chain"
)

// The export file is written and read by hand for the event lines, the bulk
// of it: encoding/json's reflection would cost more than the store's own
// reads and writes. appendEventLine writes what encoding/json would accept
// and parseEventLine reads exactly that shape; any other line (one written
// by another tool, say) is read by encoding/json.

// appendEventLine appends e's line of the export file, hash being its link.
func appendEventLine(b []byte, e *chain.Event, hash chain.Hash) []byte {
	b = append(b, `{"position":`...)
	b = strconv.AppendUint(b, e.Position, 10)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, e.ID)
	b = append(b, `,"stream":`...)
	b = appendJSONString(b, e.Stream)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, e.Version, 10)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, e.Type)
	b = append(b, `,"time":"`...)
	b = appendExportTime(b, e.Time)
	b = append(b, `","data":"`...)
	b = base64.StdEncoding.AppendEncode(b, e.Data)
	b = append(b, `","metadata":"`...)
	b = base64.StdEncoding.AppendEncode(b, e.Metadata)
	b = append(b, `","hash":"`...)
	b = hex.AppendEncode(b, hash[:])
	return append(b, "\"}\n"...)
}

// appendExportTime appends the time at micros (Unix microseconds) as
// exportTime formats it.
func appendExportTime(b []byte, micros int64) []byte {
	return timeFromMicros(micros).AppendFormat(b, exportTime)
}

// appendJSONString appends s as a JSON string. s is valid UTF-8 (the port
// validates streams, types and ids); quotes, backslashes and control
// characters are escaped, everything else is kept.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// lineParser reads one event line in appendEventLine's shape.
type lineParser struct {
	b  []byte
	i  int
	ok bool
}

func (p *lineParser) lit(s string) {
	if p.ok && bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.i += len(s)
		return
	}
	p.ok = false
}

func (p *lineParser) uint() uint64 {
	start := p.i
	for p.ok && p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	if !p.ok || p.i == start || p.i-start > 19 {
		p.ok = false
		return 0
	}
	v, err := strconv.ParseUint(string(p.b[start:p.i]), 10, 64)
	p.ok = err == nil
	return v
}

// raw returns the bytes of a string without escapes (a backslash sends the
// line to encoding/json).
func (p *lineParser) raw() []byte {
	p.lit(`"`)
	if !p.ok {
		return nil
	}
	end := bytes.IndexByte(p.b[p.i:], '"')
	if end < 0 || bytes.IndexByte(p.b[p.i:p.i+end], '\\') >= 0 {
		p.ok = false
		return nil
	}
	s := p.b[p.i : p.i+end]
	p.i += end + 1
	return s
}

// str returns a string field, which must be UTF-8 without control
// characters, as JSON requires.
func (p *lineParser) str() string {
	s := p.raw()
	for _, c := range s {
		if c < 0x20 {
			p.ok = false
		}
	}
	if !utf8.Valid(s) {
		p.ok = false
	}
	return string(s)
}

func (p *lineParser) base64() []byte {
	s := p.raw()
	if !p.ok {
		return nil
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, s)
	p.ok = err == nil
	return out[:n]
}

// parseEventLine reads b, one line of the file, into l: quickly when it has
// appendEventLine's shape, with encoding/json otherwise.
func parseEventLine(b []byte, l *exportLine) error {
	p := lineParser{b: bytes.TrimRight(b, "\r\n"), ok: true}
	p.lit(`{"position":`)
	l.Position = p.uint()
	p.lit(`,"id":`)
	l.ID = p.str()
	p.lit(`,"stream":`)
	l.Stream = p.str()
	p.lit(`,"version":`)
	l.Version = p.uint()
	p.lit(`,"type":`)
	l.Type = p.str()
	p.lit(`,"time":`)
	l.Time = p.str()
	p.lit(`,"data":`)
	l.Data = p.base64()
	p.lit(`,"metadata":`)
	l.Metadata = p.base64()
	p.lit(`,"hash":`)
	l.Hash = p.str()
	p.lit(`}`)
	if p.ok && p.i == len(p.b) {
		return nil
	}
	*l = exportLine{}
	return json.Unmarshal(b, l)
}
