package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auraos/realtime/cmd/auraos/eventfilter"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// eventQuery is the event log's filter form: stream (a prefix), type,
// user, correlation id and a time window. The user and correlation checks
// are eventfilter's, as `auraos events read` makes them.
type eventQuery struct {
	Stream, Type, User, Correlation, Since, Until string // as typed, for the form

	ids          eventfilter.IDs
	since, until time.Time
}

// parseEventQuery reads the form. It returns an EINVALID error for a time
// that is not RFC 3339.
func parseEventQuery(v url.Values) (eventQuery, error) {
	q := eventQuery{
		Stream: strings.TrimSpace(v.Get("stream")), Type: strings.TrimSpace(v.Get("type")),
		User: strings.TrimSpace(v.Get("user")), Correlation: strings.TrimSpace(v.Get("correlation")),
		Since: strings.TrimSpace(v.Get("since")), Until: strings.TrimSpace(v.Get("until")),
	}
	q.ids = eventfilter.New(q.User, q.Correlation)
	for _, t := range []struct {
		name, value string
		to          *time.Time
	}{{"since", q.Since, &q.since}, {"until", q.Until, &q.until}} {
		if t.value == "" {
			continue
		}
		parsed, err := time.Parse(time.RFC3339Nano, t.value)
		if err != nil {
			return q, domain.Errorf(domain.EINVALID, "%s %q: want an RFC 3339 time such as 2026-11-27T10:00:00Z", t.name, t.value)
		}
		*t.to = parsed
	}
	return q, nil
}

// storeFilter is the part of the query the store's indexes serve.
func (q eventQuery) storeFilter() eventstore.Filter {
	var f eventstore.Filter
	if q.Stream != "" {
		f.StreamPrefixes = []string{q.Stream}
	}
	if q.Type != "" {
		f.EventTypes = []string{q.Type}
	}
	return f
}

func (q eventQuery) match(e eventstore.RecordedEvent) bool {
	if !q.since.IsZero() && e.Time.Before(q.since) {
		return false
	}
	if !q.until.IsZero() && e.Time.After(q.until) {
		return false
	}
	return q.ids.Match(e)
}

// values is the query as URL parameters, for links that keep it.
func (q eventQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"stream": q.Stream, "type": q.Type, "user": q.User, "correlation": q.Correlation, "since": q.Since, "until": q.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// pageSize is how many events the log page shows.
const pageSize = 100

// newest returns the newest limit events that match q after after and
// before before (a zero bound: none), newest first. The log is read forward
// in pages (the port has no backward read), keeping only the last limit
// matches in memory.
func (c *Console) newest(ctx context.Context, q eventQuery, after, before eventstore.Position, limit int) ([]eventstore.RecordedEvent, error) {
	var ring []eventstore.RecordedEvent
	next := eventstore.Start
	if !after.IsZero() {
		next = eventfilter.Next(after)
	}
	const page = 1000
	for {
		evs, err := c.cfg.Read.ReadAll(ctx, eventstore.ReadAllOptions{From: next, Limit: page, Filter: q.storeFilter()})
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			if !before.IsZero() && !e.Position.Less(before) {
				return reverse(ring), nil
			}
			if q.match(e) {
				ring = append(ring, e)
				if len(ring) > limit {
					ring = ring[1:]
				}
			}
		}
		if len(evs) < page {
			return reverse(ring), nil
		}
		next = eventfilter.Next(evs[len(evs)-1].Position)
	}
}

func reverse(evs []eventstore.RecordedEvent) []eventstore.RecordedEvent {
	out := make([]eventstore.RecordedEvent, len(evs))
	for i, e := range evs {
		out[len(evs)-1-i] = e
	}
	return out
}

// eventRow is one line of the log page (and of its JSON, which the live
// follow prepends).
type eventRow struct {
	Position    string    `json:"position"`
	Time        time.Time `json:"time"`
	Stream      string    `json:"stream"`
	Type        string    `json:"type"`
	User        string    `json:"user"`
	Correlation string    `json:"correlation"`
	Summary     string    `json:"summary"`
}

func rowOf(e eventstore.RecordedEvent) eventRow {
	m := eventfilter.MetadataOf(e)
	return eventRow{
		Position: e.Position.String(), Time: e.Time, Stream: e.Stream, Type: e.Type,
		User: m.UserID, Correlation: m.CorrelationID, Summary: truncate(string(e.Data), 140),
	}
}

func rowsOf(evs []eventstore.RecordedEvent) []eventRow {
	out := make([]eventRow, len(evs))
	for i, e := range evs {
		out[i] = rowOf(e)
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// events is the log page: the newest events that pass the filters, a link
// to older ones, and (with JavaScript) a live follow.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	q, err := parseEventQuery(r.URL.Query())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var before eventstore.Position
	if b := r.URL.Query().Get("before"); b != "" {
		if before, err = eventstore.ParsePosition(b); err != nil {
			c.fail(w, r, domain.Errorf(domain.EINVALID, "before %q: want a log position", b))
			return
		}
	}
	evs, err := c.newest(r.Context(), q, eventstore.Start, before, pageSize)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	head, err := c.cfg.Read.Head(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	older := ""
	if len(evs) == pageSize {
		v := q.values()
		v.Set("before", evs[len(evs)-1].Position.String())
		older = v.Encode()
	}
	c.render(w, r, "events", "Event log", map[string]any{
		"Query": q, "Rows": rowsOf(evs), "Head": head.String(), "Older": older, "Live": before.IsZero(),
		"Filters": q.values().Encode(),
	})
}

// eventsJSON answers the live follow: the events after the position
// "after" that pass the filters, newest first, and the log's head.
func (c *Console) eventsJSON(w http.ResponseWriter, r *http.Request) {
	q, err := parseEventQuery(r.URL.Query())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	after, err := eventstore.ParsePosition(r.URL.Query().Get("after"))
	if err != nil {
		c.fail(w, r, domain.Errorf(domain.EINVALID, "after: want a log position"))
		return
	}
	evs, err := c.newest(r.Context(), q, after, eventstore.Start, pageSize)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	head, err := c.cfg.Read.Head(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": rowsOf(evs), "head": head.String()})
}

// chainLink is one event of a causation chain, indented under its cause.
type chainLink struct {
	eventRow
	ID      string
	Depth   int
	Indent  string // the depth as the page shows it
	Current bool
}

// maxChain bounds the events of one correlation id the page shows.
const maxChain = 500

// event is one event: its data and metadata, pretty-printed, and its
// causation chain: the events sharing its correlation id, each under the
// event its causationId names.
func (c *Console) event(w http.ResponseWriter, r *http.Request) {
	pos, err := eventstore.ParsePosition(r.PathValue("position"))
	if err != nil {
		c.fail(w, r, domain.Errorf(domain.EINVALID, "%q is not a log position", r.PathValue("position")))
		return
	}
	evs, err := c.cfg.Read.ReadAll(r.Context(), eventstore.ReadAllOptions{From: pos, Limit: 1})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if len(evs) == 0 || evs[0].Position != pos {
		http.Error(w, "no event at position "+pos.String(), http.StatusNotFound)
		return
	}
	e := evs[0]
	meta := eventfilter.MetadataOf(e)
	var chain []chainLink
	if meta.CorrelationID != "" {
		related, err := c.newest(r.Context(), eventQuery{ids: eventfilter.New("", meta.CorrelationID)}, eventstore.Start, eventstore.Start, maxChain)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		chain = causationChain(reverse(related), e.ID)
	}
	c.render(w, r, "event", e.Type+" at "+e.Position.String(), map[string]any{
		"Event": e, "Row": rowOf(e), "Meta": meta, "Data": pretty(e.Data), "Metadata": pretty(e.Metadata), "Chain": chain,
	})
}

// causationChain orders events (oldest first) as a tree: each event after
// the event its causation id names, one level deeper; events whose cause is
// not among them are roots.
func causationChain(evs []eventstore.RecordedEvent, current string) []chainLink {
	byID := map[string]int{}
	children := map[string][]int{}
	var roots []int
	for i, e := range evs {
		byID[e.ID] = i
	}
	for i, e := range evs {
		cause := eventfilter.MetadataOf(e).CausationID
		if _, ok := byID[cause]; ok && cause != e.ID {
			children[cause] = append(children[cause], i)
		} else {
			roots = append(roots, i)
		}
	}
	var out []chainLink
	seen := map[int]bool{}
	var walk func(i, depth int)
	walk = func(i, depth int) {
		if seen[i] {
			return
		}
		seen[i] = true
		e := evs[i]
		indent := ""
		if depth > 0 {
			indent = strings.Repeat("  ", depth-1) + "↳ "
		}
		out = append(out, chainLink{eventRow: rowOf(e), ID: e.ID, Depth: depth, Indent: indent, Current: e.ID == current})
		for _, j := range children[e.ID] {
			walk(j, depth+1)
		}
	}
	for _, i := range roots {
		walk(i, 0)
	}
	return out
}

func pretty(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
