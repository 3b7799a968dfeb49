package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
)

// statements are the writer's prepared statements: each is prepared once on
// the write pool and then bound to every group transaction, which reuses the
// connection's prepared copy (database/sql prepares it again only on a
// connection that has none). A group commit then parses nothing and, on
// PostgreSQL, plans nothing and needs one round trip per statement. The
// writer goroutine owns it.
type statements struct {
	db      *sql.DB
	byQuery map[string]*sql.Stmt
}

// prepare prepares the queries not prepared yet. It runs before the
// transaction begins: SQLite's write pool has one connection, which the
// transaction would hold.
func (c *statements) prepare(ctx context.Context, queries []string) error {
	for _, q := range queries {
		if _, ok := c.byQuery[q]; ok {
			continue
		}
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		if c.byQuery == nil {
			c.byQuery = make(map[string]*sql.Stmt)
		}
		c.byQuery[q] = st
	}
	return nil
}

// in returns query, prepared, bound to tx. The bound statement is closed with
// tx; its prepared copy stays for the next transaction. A query that prepare
// was not given is an error.
func (c *statements) in(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	st, err := c.get(query)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st), nil
}

// get returns query, prepared, to run on its own, outside a transaction. A
// query that prepare was not given is an error.
func (c *statements) get(query string) (*sql.Stmt, error) {
	st, ok := c.byQuery[query]
	if !ok {
		return nil, fmt.Errorf("statement not prepared: %s", query)
	}
	return st, nil
}

// close closes every prepared statement, once the writer has stopped.
func (c *statements) close() {
	for q, st := range c.byQuery {
		_ = st.Close()
		delete(c.byQuery, q)
	}
}
