package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/eventstore/sqlstore"
)

func newMigrateCommand() *cobra.Command {
	var storage app.Storage
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations of the event store and the read models without serving",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			// Opening a store applies its migrations.
			store, rdb, err := storage.Open(ctx, sqlstore.Options{})
			if err != nil {
				return err
			}
			defer store.Close()
			defer rdb.Close()
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "migrations applied: event store and read models are up to date")
			return err
		},
	}
	storage.Register(cmd.Flags())
	return cmd
}
