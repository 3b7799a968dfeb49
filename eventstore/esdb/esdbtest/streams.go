package esdbtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// streamsService implements the Streams service: Append and Read.
type streamsService struct {
	streams.UnimplementedStreamsServer
	s *Server
}

// defaultReadBatchSize is KurrentDB's page size, also the default max search
// window of a filtered read.
const defaultReadBatchSize = 32

// Append implements Streams.Append: an options message, then the proposed
// events, answered once the client half-closes.
func (ss *streamsService) Append(call streams.Streams_AppendServer) error {
	first, err := call.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil || opts.GetStreamIdentifier() == nil {
		return status.Error(codes.InvalidArgument, "the first append message must carry the options")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	var exp expectation
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *streams.AppendReq_Options_Any:
		exp.kind = expectAny
	case *streams.AppendReq_Options_NoStream:
		exp.kind = expectNoStream
	case *streams.AppendReq_Options_StreamExists:
		exp.kind = expectExists
	case *streams.AppendReq_Options_Revision:
		exp = expectation{kind: expectRevision, revision: o.Revision}
	default:
		return status.Error(codes.InvalidArgument, "missing expected stream revision")
	}

	var events []proposed
	size := 0
	for {
		msg, err := call.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		pm := msg.GetProposedMessage()
		if pm == nil {
			return status.Error(codes.InvalidArgument, "append messages after the first must be proposed events")
		}
		eventType, ok := pm.GetMetadata()["type"]
		if !ok {
			return requiredMetadata("type")
		}
		contentType, ok := pm.GetMetadata()["content-type"]
		if !ok {
			return requiredMetadata("content-type")
		}
		id, err := fromUUIDProto(pm.GetId())
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		size += len(eventType) + len(pm.GetData()) + len(pm.GetCustomMetadata())
		if size > ss.s.opts.MaxAppendSize {
			call.SetTrailer(metadata.Pairs("exception", "maximum-append-size-exceeded",
				"maximum-append-size", strconv.Itoa(ss.s.opts.MaxAppendSize)))
			return status.Errorf(codes.InvalidArgument, "Maximum Append Size of %d Exceeded.", ss.s.opts.MaxAppendSize)
		}
		events = append(events, proposed{id: id, eventType: eventType, contentType: contentType,
			data: pm.GetData(), meta: pm.GetCustomMetadata()})
	}
	if err := call.Context().Err(); err != nil {
		return status.FromContextError(err).Err()
	}

	var out appendOutcome
	if len(events) == 0 {
		out = ss.s.db.check(name, exp)
	} else {
		out = ss.s.db.append(name, exp, events, ss.s.ticks())
	}
	return call.SendAndClose(appendResponse(exp, out))
}

func requiredMetadata(key string) error {
	return status.Errorf(codes.InvalidArgument, "Required Metadata Property '%s' is missing", key)
}

// check answers an append without events: the expected revision check alone.
func (d *db) check(stream string, exp expectation) appendOutcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	current := int64(len(d.streams[stream])) - 1
	ok := true
	switch exp.kind {
	case expectNoStream:
		ok = current < 0
	case expectExists:
		ok = current >= 0
	case expectRevision:
		ok = exp.revision <= 1<<62 && int64(exp.revision) == current
	}
	return appendOutcome{ok: ok, current: current}
}

func appendResponse(exp expectation, out appendOutcome) *streams.AppendResp {
	if out.ok {
		success := &streams.AppendResp_Success{}
		last := out.current
		if len(out.records) > 0 {
			r := out.records[len(out.records)-1]
			last = int64(r.revision)
			success.PositionOption = &streams.AppendResp_Success_Position{Position: &streams.AppendResp_Position{
				CommitPosition: r.pos, PreparePosition: r.pos,
			}}
		} else {
			success.PositionOption = &streams.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
		}
		if last < 0 {
			success.CurrentRevisionOption = &streams.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
		} else {
			success.CurrentRevisionOption = &streams.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(last)}
		}
		return &streams.AppendResp{Result: &streams.AppendResp_Success_{Success: success}}
	}

	// Both the current fields and the 20.6.0 ones, as KurrentDB sends them.
	wrong := &streams.AppendResp_WrongExpectedVersion{}
	switch exp.kind {
	case expectAny:
		wrong.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
		wrong.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
	case expectExists:
		wrong.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
		wrong.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
	case expectNoStream:
		wrong.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
		wrong.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: ^uint64(0)}
	default:
		wrong.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: exp.revision}
		wrong.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: exp.revision}
	}
	if out.current < 0 {
		wrong.CurrentRevisionOption = &streams.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		wrong.CurrentRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
	} else {
		wrong.CurrentRevisionOption = &streams.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(out.current)}
		wrong.CurrentRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(out.current)}
	}
	return &streams.AppendResp{Result: &streams.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: wrong}}
}

// Read implements Streams.Read: stream and $all reads in both directions
// (optionally filtered, for $all) and catch-up subscriptions.
func (ss *streamsService) Read(req *streams.ReadReq, call streams.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil || o.GetUuidOption() == nil {
		return status.Error(codes.InvalidArgument, "required argument uuidOption is missing")
	}
	w := &writer{call: call, stringIDs: o.GetUuidOption().GetString_() != nil}
	f, err := compileFilter(o.GetFilter())
	if err != nil {
		return err
	}
	stream := o.GetStream()
	all := o.GetAll()
	if stream == nil && all == nil {
		return status.Error(codes.InvalidArgument, "a read needs a stream or $all")
	}
	if stream != nil && f != nil {
		return status.Error(codes.InvalidArgument, "filters apply to $all only")
	}
	backwards := o.GetReadDirection() == streams.ReadReq_Options_Backwards
	switch o.GetCountOption().(type) {
	case *streams.ReadReq_Options_Count:
		if stream != nil {
			return ss.readStream(stream, backwards, o.GetCount(), w)
		}
		return ss.readAll(all, backwards, o.GetCount(), f, w)
	case *streams.ReadReq_Options_Subscription:
		if backwards {
			return status.Error(codes.InvalidArgument, "subscriptions read forwards")
		}
		if stream != nil {
			return ss.subscribeStream(stream, w)
		}
		return ss.subscribeAll(all, f, w)
	default:
		return status.Error(codes.InvalidArgument, "a read needs a count or a subscription")
	}
}

func (ss *streamsService) readStream(o *streams.ReadReq_Options_StreamOptions, backwards bool, count uint64, w *writer) error {
	name := string(o.GetStreamIdentifier().GetStreamName())
	recs := ss.s.db.stream(name)
	if len(recs) == 0 {
		return w.send(&streams.ReadResp{Content: &streams.ReadResp_StreamNotFound_{StreamNotFound: &streams.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}})
	}
	last := uint64(len(recs) - 1)
	var sent uint64
	if backwards {
		from := last
		if r, ok := o.GetRevisionOption().(*streams.ReadReq_Options_StreamOptions_Revision); ok {
			from = min(r.Revision, last)
		} else if _, ok := o.GetRevisionOption().(*streams.ReadReq_Options_StreamOptions_Start); ok {
			from = 0
		}
		for i := int64(from); i >= 0 && sent < count; i-- {
			if err := w.event(recs[i]); err != nil {
				return err
			}
			sent++
		}
		return nil
	}
	var from uint64
	switch r := o.GetRevisionOption().(type) {
	case *streams.ReadReq_Options_StreamOptions_Revision:
		from = r.Revision
	case *streams.ReadReq_Options_StreamOptions_End:
		from = last + 1
	}
	for i := from; i <= last && sent < count; i++ {
		if err := w.event(recs[i]); err != nil {
			return err
		}
		sent++
	}
	return nil
}

func (ss *streamsService) readAll(o *streams.ReadReq_Options_AllOptions, backwards bool, count uint64, f *filter, w *writer) error {
	const page = 256
	var sent uint64
	if backwards {
		var c, p uint64
		end := true
		if pos := o.GetPosition(); pos != nil {
			c, p, end = pos.GetCommitPosition(), pos.GetPreparePosition(), false
		} else if o.GetStart() != nil {
			return nil
		}
		for sent < count {
			recs := ss.s.db.before(c, p, end, page)
			if len(recs) == 0 {
				return nil
			}
			for _, r := range recs {
				c, p, end = r.pos, r.pos, false
				if !f.match(r) {
					continue
				}
				if err := w.event(r); err != nil {
					return err
				}
				if sent++; sent == count {
					return nil
				}
			}
		}
		return nil
	}
	if o.GetEnd() != nil {
		return nil
	}
	var c, p uint64
	if pos := o.GetPosition(); pos != nil {
		c, p = pos.GetCommitPosition(), pos.GetPreparePosition()
	}
	recs := ss.s.db.atOrAfter(c, p, page)
	for sent < count && len(recs) > 0 {
		for _, r := range recs {
			c, p = r.pos, r.pos
			if !f.match(r) {
				continue
			}
			if err := w.event(r); err != nil {
				return err
			}
			if sent++; sent == count {
				return nil
			}
		}
		recs = ss.s.db.after(c, p, true, page)
	}
	return nil
}

// subscribeAll serves a catch-up subscription to $all: confirmation, the
// events after the start position, checkpoints (filtered subscriptions only),
// CaughtUp at the end of the log, then live events.
func (ss *streamsService) subscribeAll(o *streams.ReadReq_Options_AllOptions, f *filter, w *writer) error {
	req := SubscribeRequest{FromStart: o.GetStart() != nil, FromEnd: o.GetEnd() != nil}
	var c, p uint64
	has := false
	if pos := o.GetPosition(); pos != nil {
		c, p, has = pos.GetCommitPosition(), pos.GetPreparePosition(), true
		req.Commit, req.Prepare = c, p
	} else if req.FromEnd {
		if head, ok := ss.s.db.head(); ok {
			c, p, has = head, head, true
		}
	}
	if f != nil {
		req.Filtered, req.StreamRegex, req.Prefixes, req.ByEventType, req.Window = true, f.regexText, f.prefixes, f.byType, f.interval
	}
	sub := ss.s.register(req)
	defer ss.s.unregister(sub)
	ctx := w.call.Context()
	if err := w.confirm(); err != nil {
		return err
	}

	var (
		counter    uint64
		considered bool
		live       bool
		lastCP     struct{ c, p uint64 }
		cpSent     bool
	)
	checkpoint := func() error {
		if cpSent && !(lastCP.c < c || (lastCP.c == c && lastCP.p < p)) {
			return nil // KurrentDB sends a checkpoint position once
		}
		lastCP.c, lastCP.p, cpSent = c, p, true
		return w.send(&streams.ReadResp{Content: &streams.ReadResp_Checkpoint_{Checkpoint: &streams.ReadResp_Checkpoint{
			CommitPosition: c, PreparePosition: p,
		}}})
	}
	for {
		wake := ss.s.db.wait()
		recs := ss.s.db.after(c, p, has, defaultReadBatchSize)
		if len(recs) == 0 {
			if !live {
				if f != nil && considered {
					if err := checkpoint(); err != nil {
						return err
					}
				}
				if err := w.send(&streams.ReadResp{Content: &streams.ReadResp_CaughtUp_{CaughtUp: &streams.ReadResp_CaughtUp{}}}); err != nil {
					return err
				}
				live = true
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			case <-sub.drop:
				return errDropped
			}
			continue
		}
		for _, r := range recs {
			select {
			case <-sub.drop:
				return errDropped
			default:
			}
			c, p, has = r.pos, r.pos, true
			considered = true
			if f.match(r) {
				if err := w.event(r); err != nil {
					return err
				}
			}
			if f != nil {
				if counter++; counter >= f.interval {
					counter = 0
					if err := checkpoint(); err != nil {
						return err
					}
				}
			}
		}
	}
}

// subscribeStream serves a catch-up subscription to one stream.
func (ss *streamsService) subscribeStream(o *streams.ReadReq_Options_StreamOptions, w *writer) error {
	name := string(o.GetStreamIdentifier().GetStreamName())
	req := SubscribeRequest{Stream: name}
	var next uint64
	switch r := o.GetRevisionOption().(type) {
	case *streams.ReadReq_Options_StreamOptions_Start:
		req.FromStart = true
	case *streams.ReadReq_Options_StreamOptions_End:
		req.FromEnd = true
		next = uint64(len(ss.s.db.stream(name)))
	case *streams.ReadReq_Options_StreamOptions_Revision:
		req.Revision = r.Revision
		next = r.Revision + 1
	}
	sub := ss.s.register(req)
	defer ss.s.unregister(sub)
	ctx := w.call.Context()
	if err := w.confirm(); err != nil {
		return err
	}
	live := false
	for {
		wake := ss.s.db.wait()
		recs := ss.s.db.stream(name)
		if next >= uint64(len(recs)) {
			if !live {
				if err := w.send(&streams.ReadResp{Content: &streams.ReadResp_CaughtUp_{CaughtUp: &streams.ReadResp_CaughtUp{}}}); err != nil {
					return err
				}
				live = true
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			case <-sub.drop:
				return errDropped
			}
			continue
		}
		for ; next < uint64(len(recs)); next++ {
			select {
			case <-sub.drop:
				return errDropped
			default:
			}
			if err := w.event(recs[next]); err != nil {
				return err
			}
		}
	}
}

var errDropped = status.Error(codes.Unavailable, "esdbtest: subscription dropped by the server")

// filter is a compiled server-side filter of a $all read or subscription.
type filter struct {
	byType    bool
	prefixes  []string
	regex     *regexp.Regexp
	regexText string
	interval  uint64 // checkpoint interval: max search window × multiplier
}

func compileFilter(o *streams.ReadReq_Options_FilterOptions) (*filter, error) {
	if o == nil {
		return nil, nil
	}
	var expr *streams.ReadReq_Options_FilterOptions_Expression
	f := &filter{}
	switch x := o.GetFilter().(type) {
	case *streams.ReadReq_Options_FilterOptions_StreamIdentifier:
		expr = x.StreamIdentifier
	case *streams.ReadReq_Options_FilterOptions_EventType:
		expr, f.byType = x.EventType, true
	default:
		return nil, status.Error(codes.InvalidArgument, "a filter needs a stream or event type expression")
	}
	if expr.GetRegex() != "" {
		re, err := regexp.Compile(expr.GetRegex())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid filter regex: %v", err)
		}
		f.regex, f.regexText = re, expr.GetRegex()
	} else {
		f.prefixes = expr.GetPrefix()
	}
	window := uint64(defaultReadBatchSize)
	if m, ok := o.GetWindow().(*streams.ReadReq_Options_FilterOptions_Max); ok && m.Max > 0 {
		window = uint64(m.Max)
	}
	if o.GetCheckpointIntervalMultiplier() == 0 {
		return nil, status.Error(codes.InvalidArgument, "checkpointIntervalMultiplier must not be zero")
	}
	f.interval = window * uint64(o.GetCheckpointIntervalMultiplier())
	return f, nil
}

// match reports whether r passes f; a nil filter passes everything.
func (f *filter) match(r *record) bool {
	if f == nil {
		return true
	}
	subject := r.stream
	if f.byType {
		subject = r.eventType
	}
	if f.regex != nil {
		return f.regex.MatchString(subject)
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}

// writer sends read responses in the UUID format the client asked for.
type writer struct {
	call      streams.Streams_ReadServer
	stringIDs bool
}

func (w *writer) send(m *streams.ReadResp) error { return w.call.Send(m) }

func (w *writer) confirm() error {
	return w.send(&streams.ReadResp{Content: &streams.ReadResp_Confirmation{Confirmation: &streams.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString(),
	}}})
}

func (w *writer) event(r *record) error {
	id := uuidProto(r.id)
	if w.stringIDs {
		id = &shared.UUID{Value: &shared.UUID_String_{String_: r.id.String()}}
	}
	return w.send(&streams.ReadResp{Content: &streams.ReadResp_Event{Event: &streams.ReadResp_ReadEvent{
		Event: &streams.ReadResp_ReadEvent_RecordedEvent{
			Id:               id,
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.pos,
			CommitPosition:   r.pos,
			Metadata: map[string]string{
				"type":         r.eventType,
				"content-type": r.contentType,
				"created":      strconv.FormatInt(r.created, 10),
			},
			CustomMetadata: r.meta,
			Data:           r.data,
		},
		Position: &streams.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
	}}})
}

func uuidProto(id uuid.UUID) *shared.UUID {
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits:  int64(binary.BigEndian.Uint64(id[:8])),
		LeastSignificantBits: int64(binary.BigEndian.Uint64(id[8:])),
	}}}
}

func fromUUIDProto(u *shared.UUID) (uuid.UUID, error) {
	switch v := u.GetValue().(type) {
	case *shared.UUID_Structured_:
		var id uuid.UUID
		binary.BigEndian.PutUint64(id[:8], uint64(v.Structured.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(id[8:], uint64(v.Structured.GetLeastSignificantBits()))
		return id, nil
	case *shared.UUID_String_:
		return uuid.Parse(v.String_)
	default:
		return uuid.UUID{}, fmt.Errorf("event id missing")
	}
}
