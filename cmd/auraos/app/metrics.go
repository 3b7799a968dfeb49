package app

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/projections"
)

// metrics are the server's Prometheus metrics, all named auraos_….
type metrics struct {
	registry        *prometheus.Registry
	clientEvents    *prometheus.CounterVec
	ackDuration     prometheus.Histogram
	rateLimited     *prometheus.CounterVec
	pushes          *prometheus.CounterVec
	appended        *prometheus.CounterVec
	appendDuration  prometheus.Histogram
	commitBatch     prometheus.Histogram
	commitDuration  prometheus.Histogram
	projectedEvents *prometheus.CounterVec
	aiCalls         *prometheus.CounterVec
	slowDisconnects prometheus.Counter
	endBacklog      prometheus.Gauge
	// signalReconnects counts the signal bus's reconnections to its broker.
	signalReconnects prometheus.Counter
	appends          appendHealth
}

// appendHealth remembers whether the latest appends failed because the
// store could not take them (a full disk, a lost database), for /readyz:
// a server that cannot store is not ready, and is again by itself once an
// append succeeds.
type appendHealth struct {
	mu       sync.Mutex
	failing  bool
	reason   string
	failedAt time.Time
}

// record takes the outcome of one append. Only an EUNAVAILABLE error says
// the store is away; a refused append (a conflict, bad input) says nothing.
func (h *appendHealth) record(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		h.failing = false
	case domain.ErrorCode(err) == domain.EUNAVAILABLE:
		h.failing, h.reason, h.failedAt = true, domain.ErrorMessage(err), time.Now()
	}
}

// appendFailureMemory is how long a failed append keeps /readyz red while
// no append is tried: the server cannot tell the store is back before it
// tries again, and does not say it is down for good.
const appendFailureMemory = time.Minute

// failure returns why appends fail, or "" when they do not.
func (h *appendHealth) failure() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing || time.Since(h.failedAt) > appendFailureMemory {
		return ""
	}
	return h.reason
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		clientEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auraos_client_events_total", Help: "Client events handled, by event name and outcome (ok or the error code).",
		}, []string{"event", "outcome"}),
		ackDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "auraos_ack_duration_seconds", Help: "Time from receiving a client event to its acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auraos_rate_limited_total", Help: "Client events refused with RATE_LIMITED, by event name.",
		}, []string{"event"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auraos_pushes_total", Help: "Server-to-client events sent (to a socket, a room or everyone), by event name.",
		}, []string{"event"}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auraos_events_appended_total", Help: "Events appended to the event store, by event type.",
		}, []string{"type"}),
		appendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "auraos_append_duration_seconds", Help: "Time an append takes until it is durable, group-commit wait included.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "auraos_append_batch_size", Help: "Events per group-commit transaction of the SQL event store.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "auraos_commit_duration_seconds", Help: "Time one group-commit transaction of the SQL event store takes.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		projectedEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auraos_projection_events_total", Help: "Events applied by each projection (rate() gives events per second).",
		}, []string{"projection"}),
		aiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auraos_ai_calls_total", Help: "Calls to the AI endpoint, by outcome.",
		}, []string{"outcome"}),
		slowDisconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auraos_slow_disconnects_total", Help: "Sockets disconnected because their outbound queue passed --client-queue-max.",
		}),
		endBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auraos_session_end_backlog", Help: "Ends of sessions that could not be stored yet and are being retried.",
		}),
		signalReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auraos_signal_reconnects_total", Help: "Times the connection to the NATS signal broker came back after an outage (typing indicators of the outage are lost).",
		}),
	}
	m.registry.MustRegister(m.clientEvents, m.ackDuration, m.rateLimited, m.pushes, m.appended, m.appendDuration,
		m.commitBatch, m.commitDuration, m.projectedEvents, m.aiCalls, m.slowDisconnects, m.endBacklog, m.signalReconnects,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ClientEvent implements socketadapter.Observer.
func (m *metrics) ClientEvent(event, outcome string, took time.Duration) {
	m.clientEvents.WithLabelValues(event, outcome).Inc()
	m.ackDuration.Observe(took.Seconds())
	if outcome == "RATE_LIMITED" {
		m.rateLimited.WithLabelValues(event).Inc()
	}
}

// Pushed implements socketadapter.Observer.
func (m *metrics) Pushed(event string) { m.pushes.WithLabelValues(event).Inc() }

// SlowDisconnect implements socketadapter.Observer.
func (m *metrics) SlowDisconnect() { m.slowDisconnects.Inc() }

// SessionEndBacklog implements socketadapter.Observer.
func (m *metrics) SessionEndBacklog(n int) { m.endBacklog.Set(float64(n)) }

// onCommit observes the SQL store's group commits.
func (m *metrics) onCommit(_, events int, took time.Duration) {
	m.commitBatch.Observe(float64(events))
	m.commitDuration.Observe(took.Seconds())
}

// onBatch returns the observer of one projection runner's batches.
func (m *metrics) onBatch(projection string) func(int, eventstore.Position, time.Duration) {
	c := m.projectedEvents.WithLabelValues(projection)
	return func(events int, _ eventstore.Position, _ time.Duration) { c.Add(float64(events)) }
}

// aiCall counts a call to the AI endpoint.
func (m *metrics) aiCall(outcome string) { m.aiCalls.WithLabelValues(outcome).Inc() }

// instrumentedStore counts appends by event type and times them.
type instrumentedStore struct {
	eventstore.Store
	m *metrics
}

func (s instrumentedStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	return s.Submit(ctx, stream, expected, events...).Wait(ctx)
}

// Submit keeps the store's pipelining (eventstore.Submitter) and observes
// the outcome when it arrives.
func (s instrumentedStore) Submit(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) *eventstore.Pending {
	start := time.Now()
	p := eventstore.SubmitAppend(ctx, s.Store, stream, expected, events...)
	p.OnDone(func(_ eventstore.AppendResult, err error) {
		s.m.appends.record(err)
		if err == nil {
			s.m.appendDuration.Observe(time.Since(start).Seconds())
			for _, e := range events {
				s.m.appended.WithLabelValues(e.Type).Inc()
			}
		}
	})
	return p
}

// liveCollector reports what is read at scrape time: sockets by transport,
// online users, and each projection's position and lag behind the log.
type liveCollector struct {
	sockets   func() map[string]int
	online    func(context.Context) (int, error)
	head      func(context.Context) (eventstore.Position, error)
	runners   []*projections.Runner
	socketsD  *prometheus.Desc
	onlineD   *prometheus.Desc
	positionD *prometheus.Desc
	lagD      *prometheus.Desc
}

func newLiveCollector(sockets func() map[string]int, online func(context.Context) (int, error), head func(context.Context) (eventstore.Position, error), runners []*projections.Runner) *liveCollector {
	return &liveCollector{
		sockets: sockets, online: online, head: head, runners: runners,
		socketsD:  prometheus.NewDesc("auraos_connected_sockets", "Connected sockets of this server, by transport.", []string{"transport"}, nil),
		onlineD:   prometheus.NewDesc("auraos_online_users", "Users online (with at least one live session), from the online-users read model.", nil, nil),
		positionD: prometheus.NewDesc("auraos_projection_position", "The log position each projection has processed through (commit part).", []string{"projection"}, nil),
		lagD:      prometheus.NewDesc("auraos_projection_lag", "How far each projection trails the head of the log, in commit positions.", []string{"projection"}, nil),
	}
}

func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.socketsD
	ch <- c.onlineD
	ch <- c.positionD
	ch <- c.lagD
}

func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.sockets()
	for _, t := range []string{"websocket", "polling"} {
		ch <- prometheus.MustNewConstMetric(c.socketsD, prometheus.GaugeValue, float64(counts[t]), t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if n, err := c.online(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.onlineD, prometheus.GaugeValue, float64(n))
	}
	head, err := c.head(ctx)
	for _, r := range c.runners {
		pos := r.Position()
		name := r.Projection().Name()
		ch <- prometheus.MustNewConstMetric(c.positionD, prometheus.GaugeValue, float64(pos.Commit), name)
		if err == nil {
			lag := 0.0
			if pos.Commit < head.Commit {
				lag = float64(head.Commit - pos.Commit)
			}
			ch <- prometheus.MustNewConstMetric(c.lagD, prometheus.GaugeValue, lag, name)
		}
	}
}
