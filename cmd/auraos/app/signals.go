package app

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/auraos/realtime/internal/redact"
	"github.com/auraos/realtime/schema"
	"github.com/auraos/realtime/socketadapter"
	"github.com/auraos/realtime/socketadapter/natssignal"
	"github.com/auraos/realtime/socketadapter/pgsignal"
)

// Signals says how the servers sharing an event store tell each other what
// the log does not hold: typing indicators, and which servers are alive.
type Signals struct {
	// Spec is "postgres" (NOTIFY and advisory locks in the PostgreSQL event
	// store), "none" (a server alone), one or more comma-separated nats://
	// URLs, or empty: postgres with a PostgreSQL event store, none with any
	// other.
	Spec string
	// Prefix keeps installations that share one NATS broker apart: their
	// subjects and lease bucket are named after it (default "auraos").
	Prefix string
	// LeaseTTL is how long a server's NATS lease outlives its last renewal
	// (default natssignal.DefaultLeaseTTL).
	LeaseTTL time.Duration
}

// The kinds of signals.
const (
	SignalsNone     = "none"
	SignalsPostgres = "postgres"
	SignalsNATS     = "nats"
)

// DefaultSignalsPrefix is the prefix of an installation that names none.
const DefaultSignalsPrefix = "auraos"

// Kind checks the configuration against the event store it will serve and
// returns SignalsNone, SignalsPostgres or SignalsNATS. An unknown form, a
// bad prefix or TTL, and postgres with an event store that is not
// PostgreSQL are errors that say what to give instead.
func (s Signals) Kind(eventStore string) (string, error) {
	pgStore := schema.IsPostgresURL(eventStore)
	switch spec := strings.TrimSpace(s.Spec); {
	case spec == "":
		if pgStore {
			return SignalsPostgres, nil
		}
		return SignalsNone, nil
	case spec == SignalsNone:
		return SignalsNone, nil
	case spec == SignalsPostgres:
		if !pgStore {
			return "", fmt.Errorf("--signals postgres needs a PostgreSQL event store (--event-store postgres://…); with this one use nats://host:4222 or none")
		}
		return SignalsPostgres, nil
	case strings.HasPrefix(spec, "nats://") || strings.HasPrefix(spec, "tls://"):
		if err := natssignal.CheckURL(spec); err != nil {
			return "", fmt.Errorf("--signals: %w", err)
		}
		if err := natssignal.CheckPrefix(s.prefix()); err != nil {
			return "", fmt.Errorf("--signals-prefix: %w", err)
		}
		if s.LeaseTTL != 0 && s.LeaseTTL < natssignal.MinLeaseTTL {
			return "", fmt.Errorf("--lease-ttl %s: must be at least %s", s.LeaseTTL, natssignal.MinLeaseTTL)
		}
		return SignalsNATS, nil
	default:
		return "", fmt.Errorf("--signals %q: want postgres, none, or nats://host:4222 (several separated by commas)", redact.Text(spec))
	}
}

func (s Signals) prefix() string {
	if s.Prefix == "" {
		return DefaultSignalsPrefix
	}
	return s.Prefix
}

// liveness is what tells this server's node apart from dead ones while it
// runs, and lets the reaper act for a dead one.
type liveness interface {
	nodeTakeover
	io.Closer
}

// signalBus is the bus the adapter's typing indicators cross servers on.
type signalBus interface {
	socketadapter.SignalBus
	io.Closer
}

// openLiveness connects this server to the others as Config.Signals says
// and takes its node's lock or lease, before the previous run's sessions
// are ended (so a dead node's sessions are never ended twice at once).
// With none it does nothing.
func (s *Server) openLiveness(ctx context.Context) error {
	kind, err := s.cfg.Signals.Kind(s.cfg.Storage.EventStore)
	if err != nil {
		return err
	}
	s.signalsKind = kind
	switch kind {
	case SignalsPostgres:
		l, err := pgsignal.OpenLiveness(ctx, s.cfg.Storage.EventStore, s.cfg.NodeID, s.log)
		if err != nil {
			return err
		}
		s.liveness = l
	case SignalsNATS:
		log := s.log.With("component", "signals")
		if s.broker, err = natssignal.Connect(natssignal.Options{
			URL: s.cfg.Signals.Spec, Name: "auraos " + s.cfg.NodeID, Logger: log, OnReconnect: s.metrics.signalReconnects.Inc,
		}); err != nil {
			return err
		}
		l, err := natssignal.OpenLiveness(ctx, s.broker, natssignal.LivenessOptions{
			Prefix: s.cfg.Signals.prefix(), Node: s.cfg.NodeID, TTL: s.cfg.Signals.LeaseTTL, Logger: log,
		})
		if err != nil {
			return err
		}
		s.liveness = l
		log.Info("sharing typing and liveness through NATS", "url", redact.Text(s.cfg.Signals.Spec), "prefix", s.cfg.Signals.prefix())
	}
	return nil
}

// openSignals opens the bus typing indicators cross servers on, if any.
func (s *Server) openSignals(ctx context.Context) error {
	switch s.signalsKind {
	case SignalsPostgres:
		b, err := pgsignal.Open(ctx, s.cfg.Storage.EventStore, s.log.With("component", "signals"))
		if err != nil {
			return err
		}
		s.signals = b
	case SignalsNATS:
		b, err := natssignal.OpenBus(s.broker, s.cfg.Signals.prefix())
		if err != nil {
			return err
		}
		s.signals = b
	}
	return nil
}
