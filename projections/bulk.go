package projections

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// bulkInsert inserts many rows with multi-row INSERT statements whose values
// are bound, not formatted into the SQL: each full chunk reuses one prepared
// statement, so a rebuild parses a handful of statements, not one per batch.
type bulkInsert struct {
	table    string
	columns  []string
	conflict string // e.g. "ON CONFLICT DO NOTHING"
	// with, when set, turns the statement around: the rows become the
	// common table expression v(columns), and with is the statement that
	// reads them (an UPDATE … FROM v, say); table and conflict are unused.
	with string
	// casts, when set, wraps each column's placeholder in CAST(… AS type)
	// (an empty entry leaves it bare): PostgreSQL types the values of a
	// VALUES list as text unless told.
	casts []string
	// fresh says no row inserted can meet one already there (a rebuild
	// fills an empty table, each event once), so PostgreSQL may COPY the
	// rows in, several times faster than INSERT, conflict clause unneeded.
	fresh bool
}

// bulkChunk is how many rows one statement inserts.
const bulkChunk = 500

func (b bulkInsert) statement(numbered bool, rows int) string {
	var q strings.Builder
	if b.with != "" {
		q.WriteString("WITH v (" + strings.Join(b.columns, ", ") + ") AS (VALUES ")
	} else {
		q.WriteString("INSERT INTO " + b.table + " (" + strings.Join(b.columns, ", ") + ") VALUES ")
	}
	n := 0
	for r := range rows {
		if r > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('(')
		for c := range b.columns {
			if c > 0 {
				q.WriteByte(',')
			}
			n++
			placeholder := "?" // SQLite resolves $n by name with a linear search; ? is positional.
			if numbered {
				placeholder = "$" + strconv.Itoa(n)
			}
			if c < len(b.casts) && b.casts[c] != "" {
				placeholder = "CAST(" + placeholder + " AS " + b.casts[c] + ")"
			}
			q.WriteString(placeholder)
		}
		q.WriteByte(')')
	}
	if b.with != "" {
		q.WriteString(") " + b.with)
	} else {
		q.WriteString(" " + b.conflict)
	}
	return q.String()
}

// exec inserts rows (each holding one value per column) inside tx.
func (b bulkInsert) exec(ctx context.Context, tx bun.Tx, rows [][]any) error {
	numbered := tx.Dialect().Name() == dialect.PG
	if numbered && b.fresh && b.with == "" && len(rows) > 0 {
		return b.copy(ctx, tx, rows)
	}
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	var args []any // sized by the first multi-row chunk: a live batch may need none
	for start := 0; start < len(rows); start += bulkChunk {
		chunk := rows[start:min(start+bulkChunk, len(rows))]
		if len(chunk) < bulkChunk && !numbered && b.with == "" {
			if err := b.execEach(ctx, tx, chunk); err != nil {
				return err
			}
			continue
		}
		if args == nil {
			args = make([]any, 0, len(chunk)*len(b.columns))
		}
		args = args[:0]
		for _, r := range chunk {
			args = append(args, r...)
		}
		if len(chunk) < bulkChunk {
			if _, err := tx.Tx.ExecContext(ctx, b.statement(numbered, len(chunk)), args...); err != nil {
				return err
			}
			continue
		}
		if full == nil {
			stmt, err := tx.Tx.PrepareContext(ctx, b.statement(numbered, bulkChunk))
			if err != nil {
				return err
			}
			full = stmt
		}
		if _, err := full.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// execEach inserts rows one at a time through one prepared single-row
// statement, as SQLite does a live batch fastest: a multi-row statement for
// a batch of any other size costs a parse of the whole statement, and SQLite
// gives a statement writing several rows a statement journal, copying every
// page it touches once more.
func (b bulkInsert) execEach(ctx context.Context, tx bun.Tx, rows [][]any) error {
	stmt, err := tx.Tx.PrepareContext(ctx, b.statement(false, 1))
	if err != nil {
		return err
	}
	defer stmt.Close()
	return execRows(ctx, stmt, rows)
}

// execRows runs stmt once for each row.
func execRows(ctx context.Context, stmt *sql.Stmt, rows [][]any) error {
	for _, r := range rows {
		if _, err := stmt.ExecContext(ctx, r...); err != nil {
			return err
		}
	}
	return nil
}

// copy streams rows into the table with PostgreSQL's COPY FROM STDIN.
func (b bulkInsert) copy(ctx context.Context, tx bun.Tx, rows [][]any) error {
	stmt, err := tx.Tx.PrepareContext(ctx, "COPY "+b.table+" ("+strings.Join(b.columns, ", ")+") FROM STDIN")
	if err != nil {
		return err
	}
	defer stmt.Close()
	if err := execRows(ctx, stmt, rows); err != nil {
		return err
	}
	// The empty Exec ends the stream and reports what the rows met.
	_, err = stmt.ExecContext(ctx)
	return err
}
