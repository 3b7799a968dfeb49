package domain

import "unicode/utf8"

// decodeMessagePosted decodes the JSON of a MessagePosted as encoding/json
// does, for the plain shape json.Marshal writes: one object of the known
// keys (exact case), strings without escapes, an integer schema version,
// true or false, userAvatar a string or null. It reports false for
// anything else (escapes, other keys, nulls elsewhere, invalid JSON), and
// Decode falls back to encoding/json then: this is a shortcut, never a
// second grammar. Messages are most of a chat log, and a rebuild spent
// about a quarter of its CPU in encoding/json decoding them (it scans each
// value twice and looks fields up by reflection). FuzzDecodeMessagePosted
// checks that both agree.
func decodeMessagePosted(data []byte) (MessagePosted, bool) {
	var m MessagePosted
	d := fastDecoder{data: data}
	if !d.byte('{') {
		return m, false
	}
	if d.peek('}') {
		d.i++
		return m, d.end()
	}
	for {
		key, ok := d.string()
		if !ok || !d.byte(':') {
			return m, false
		}
		d.space()
		switch key {
		case "schemaVersion":
			m.SchemaVersion, ok = d.int()
		case "id":
			m.ID, ok = d.string()
		case "roomName":
			m.RoomName, ok = d.string()
		case "userId":
			m.UserID, ok = d.string()
		case "userName":
			m.UserName, ok = d.string()
		case "userAvatar":
			if d.literal("null") {
				m.UserAvatar = nil
			} else {
				var s string
				s, ok = d.string()
				m.UserAvatar = &s
			}
		case "message":
			m.Message, ok = d.string()
		case "messageType":
			var s string
			s, ok = d.string()
			m.MessageType = MessageType(s)
		case "isAI":
			switch {
			case d.literal("true"):
				m.IsAI = true
			case d.literal("false"):
				m.IsAI = false
			default:
				ok = false
			}
		case "clientMsgId":
			m.ClientMsgID, ok = d.string()
		case "inReplyTo":
			m.InReplyTo, ok = d.string()
		case "at":
			start := d.i
			if _, ok = d.string(); ok {
				// time.Time's own decoding, on the quoted string, as
				// encoding/json calls it.
				ok = m.At.UnmarshalJSON(d.data[start:d.i]) == nil
			}
		default:
			return m, false
		}
		if !ok {
			return m, false
		}
		d.space()
		if d.peek('}') {
			d.i++
			return m, d.end()
		}
		if !d.byte(',') {
			return m, false
		}
	}
}

// fastDecoder reads the plain JSON decodeMessagePosted accepts.
type fastDecoder struct {
	data []byte
	i    int
}

func (d *fastDecoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// byte skips white space and then c.
func (d *fastDecoder) byte(c byte) bool {
	d.space()
	if d.i < len(d.data) && d.data[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *fastDecoder) peek(c byte) bool {
	d.space()
	return d.i < len(d.data) && d.data[d.i] == c
}

// end reports whether only white space follows.
func (d *fastDecoder) end() bool {
	d.space()
	return d.i == len(d.data)
}

func (d *fastDecoder) literal(s string) bool {
	if len(d.data)-d.i >= len(s) && string(d.data[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

// string reads a string without escapes or control characters, in valid
// UTF-8.
func (d *fastDecoder) string() (string, bool) {
	d.space()
	if d.i >= len(d.data) || d.data[d.i] != '"' {
		return "", false
	}
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.data); j++ {
		c := d.data[j]
		switch {
		case c == '"':
			s := d.data[start:j]
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			d.i = j + 1
			return string(s), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", false
}

// int reads a small integer (at most 9 digits, no fraction or exponent).
func (d *fastDecoder) int() (int, bool) {
	neg := d.i < len(d.data) && d.data[d.i] == '-'
	if neg {
		d.i++
	}
	start, n := d.i, 0
	for d.i < len(d.data) && d.data[d.i] >= '0' && d.data[d.i] <= '9' && d.i-start < 10 {
		n = n*10 + int(d.data[d.i]-'0')
		d.i++
	}
	digits := d.i - start
	if digits == 0 || digits > 9 || (digits > 1 && d.data[start] == '0') {
		return 0, false
	}
	if d.i < len(d.data) {
		switch d.data[d.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return n, true
}
