package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/schema"
)

// storageConfig holds the storage flags every command shares.
type storageConfig struct {
	DataDir    string
	EventStore string
}

func (c *storageConfig) register(flags *pflag.FlagSet) {
	flags.StringVar(&c.DataDir, "data-dir", "./data", "directory of the embedded SQLite databases (event store and read models)")
	flags.StringVar(&c.EventStore, "event-store", "sqlite", `event store: "sqlite" (embedded, in --data-dir) or a postgres:// URL`)
}

// openEventStore opens the event store the flags select.
func (c *storageConfig) openEventStore(ctx context.Context) (eventstore.Store, error) {
	switch {
	case c.EventStore == "" || c.EventStore == "sqlite":
		return sqlstore.OpenSQLite(ctx, c.DataDir, sqlstore.Options{})
	case schema.IsPostgresURL(c.EventStore):
		return sqlstore.OpenPostgres(ctx, c.EventStore, sqlstore.Options{})
	default:
		scheme, _, _ := strings.Cut(c.EventStore, ":")
		return nil, fmt.Errorf("--event-store %q: unknown kind %q (want sqlite or postgres://)", schema.RedactURL(c.EventStore), scheme)
	}
}
