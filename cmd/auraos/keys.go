package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore/shred"
)

func newKeysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Back up and restore the data keys of personal data, apart from the log",
	}
	cmd.AddCommand(newKeysExportCommand(), newKeysImportCommand())
	return cmd
}

func newKeysExportCommand() *cobra.Command {
	var storage app.Storage
	var out string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write every data key, one JSON object a line, as stored (wrapped when a key-encryption key is set)",
		Long: `Write every data key of the key table, one JSON object a line ({"keyId", "userId",
"key" (base64), "wrapping", "createdAt"}), to --out (a file created with mode 0600) or
standard output. Keys are written as stored: wrapped under the key-encryption key when
one is set (importing them then needs the same key), in clear otherwise, so keep the
file as safe as the key table itself. Losing the key table without such a copy loses
every personal field of the log.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeysExport(cmd.Context(), cmd.OutOrStdout(), storage, out)
		},
	}
	storage.Register(cmd.Flags())
	cmd.Flags().StringVar(&out, "out", "-", "file to write, or - for standard output")
	return cmd
}

func newKeysImportCommand() *cobra.Command {
	var storage app.Storage
	var in string
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Store the keys of a keys export that the key table lacks; never a key of a user forgotten since",
		Long: `Read a keys export from --in (a file, or - for standard input) and store every key
the key table lacks. A key of a user forgotten after the key was made is skipped and
never stored again: it would make their erased data readable. Keys exported under
another key-encryption key (or none) are refused, and nothing is stored. It prints how
many keys were stored, already present and skipped as forgotten. Restart running
servers afterwards: they remember which keys they found missing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeysImport(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), storage, in)
		},
	}
	storage.Register(cmd.Flags())
	cmd.Flags().StringVar(&in, "in", "", "file to read, or - for standard input (required)")
	return cmd
}

// openKeyTable opens the storage and returns its SQL key table.
func openKeyTable(ctx context.Context, storage app.Storage) (*shred.SQLKeys, func(), error) {
	rdb, err := storage.OpenReadDB(ctx)
	if err != nil {
		return nil, nil, err
	}
	k, err := storage.Keys(ctx, rdb)
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	sk, ok := k.(*shred.SQLKeys)
	if !ok {
		rdb.Close()
		return nil, nil, domain.Errorf(domain.EUNAVAILABLE, "the read database has no key table")
	}
	return sk, func() { rdb.Close() }, nil
}

func runKeysExport(ctx context.Context, stdout io.Writer, storage app.Storage, out string) error {
	keys, done, err := openKeyTable(ctx, storage)
	if err != nil {
		return err
	}
	defer done()
	all, err := keys.Export(ctx)
	if err != nil {
		return err
	}
	w := stdout
	var f *os.File
	if out != "-" && out != "" {
		if f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		w = f
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, k := range all {
		if err := enc.Encode(k); err != nil {
			return err
		}
	}
	err = bw.Flush()
	if f != nil {
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			_, err = fmt.Fprintf(os.Stderr, "exported %d keys to %s\n", len(all), out)
		}
	}
	return err
}

func runKeysImport(ctx context.Context, stdin io.Reader, stdout io.Writer, storage app.Storage, in string) error {
	r := stdin
	switch in {
	case "":
		return domain.Errorf(domain.EINVALID, "--in is required: a keys export file, or - for standard input")
	case "-":
	default:
		f, err := os.Open(in)
		if err != nil {
			return fmt.Errorf("--in: %w", err)
		}
		defer f.Close()
		r = f
	}
	var all []shred.ExportedKey
	dec := json.NewDecoder(r)
	for line := 1; dec.More(); line++ {
		var k shred.ExportedKey
		if err := dec.Decode(&k); err != nil {
			return domain.WrapError(domain.EINVALID, fmt.Sprintf("--in: key %d is not a keys export line", line), err)
		}
		all = append(all, k)
	}
	keys, done, err := openKeyTable(ctx, storage)
	if err != nil {
		return err
	}
	defer done()
	res, err := keys.Import(ctx, all)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "keys: %d stored, %d already present, %d skipped (user forgotten since)\n", res.Stored, res.AlreadyPresent, res.SkippedForgotten)
	return err
}
