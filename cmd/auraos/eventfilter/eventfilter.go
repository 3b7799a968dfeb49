// Package eventfilter selects events of the log by the user they concern
// and by their correlation id: the part of a log read that neither the
// store's indexes nor its port offer, shared by `auraos events read` and
// the /console event log so that both select the same events.
//
// The metadata and data are JSON kept byte for byte without an index, so
// the checks run on each event of one pass, cheapest first: a byte search
// for the quoted id rejects most events before any JSON is decoded.
package eventfilter

import (
	"bytes"
	"encoding/json"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// IDs selects the events of one user and of one correlation id; an empty
// field selects every event. The zero value selects everything.
type IDs struct {
	user, correlation string
	// userNeedle and correlationNeedle are the ids as JSON strings when they
	// can be written only one way; nil means every event is decoded.
	userNeedle, correlationNeedle []byte
}

// New returns the selection of user's events with the correlation id
// (either may be empty: no condition).
func New(user, correlation string) IDs {
	return IDs{user: user, correlation: correlation, userNeedle: plainJSONString(user), correlationNeedle: plainJSONString(correlation)}
}

// IsEmpty reports whether the selection lets every event through.
func (s IDs) IsEmpty() bool { return s.user == "" && s.correlation == "" }

// Match reports whether e is the user's (its metadata's userId, or the user
// its data is about: see AboutUser) and carries the correlation id.
func (s IDs) Match(e eventstore.RecordedEvent) bool {
	if s.IsEmpty() {
		return true
	}
	if s.correlationNeedle != nil && !bytes.Contains(e.Metadata, s.correlationNeedle) {
		return false
	}
	if s.userNeedle != nil && !bytes.Contains(e.Metadata, s.userNeedle) && !bytes.Contains(e.Data, s.userNeedle) {
		return false
	}
	meta := MetadataOf(e)
	if s.correlation != "" && meta.CorrelationID != s.correlation {
		return false
	}
	return s.user == "" || meta.UserID == s.user || AboutUser(e, s.user)
}

// Metadata is the part of an event's metadata that says who caused it.
type Metadata struct {
	UserID        string `json:"userId"`
	CorrelationID string `json:"correlationId"`
	CausationID   string `json:"causationId"`
	Command       string `json:"command"`
}

// MetadataOf decodes e's metadata; metadata that does not decode names
// nobody.
func MetadataOf(e eventstore.RecordedEvent) Metadata {
	var m Metadata
	_ = json.Unmarshal(e.Metadata, &m)
	return m
}

// plainJSONString returns s as a JSON string when every JSON encoder writes
// it the same way (printable ASCII that nothing escapes), else nil.
func plainJSONString(s string) []byte {
	if s == "" {
		return nil
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '/', c == '<', c == '>', c == '&':
			return nil
		}
	}
	return []byte(`"` + s + `"`)
}

// AboutUser reports whether e's data names uid as the user it is about:
// whose presence or chat membership it is, who posted the message, to or
// from whom the notification went, who changed the app, the agent or sent
// the alert. Other events, and data that does not decode, are about nobody.
func AboutUser(e eventstore.RecordedEvent, uid string) bool {
	var d struct {
		UserID string `json:"userId"`
		To     string `json:"to"`
		From   string `json:"from"`
		By     string `json:"by"`
	}
	switch e.Type {
	case domain.TypePresenceJoined, domain.TypePresenceLeft, domain.TypeChatMemberJoined, domain.TypeChatMemberLeft, domain.TypeMessagePosted:
		return json.Unmarshal(e.Data, &d) == nil && d.UserID == uid
	case domain.TypeNotificationSent:
		return json.Unmarshal(e.Data, &d) == nil && (d.To == uid || d.From == uid)
	case domain.TypeAppStatusChanged, domain.TypeDataAgentUpdated, domain.TypeSystemAlertBroadcast:
		return json.Unmarshal(e.Data, &d) == nil && d.By == uid
	}
	return false
}

// Next returns the smallest position after p, for paging through the log
// with ReadAll's inclusive From.
func Next(p eventstore.Position) eventstore.Position {
	if p.Commit == p.Prepare {
		return eventstore.Pos(p.Commit + 1)
	}
	return eventstore.Position{Commit: p.Commit, Prepare: p.Prepare + 1}
}
