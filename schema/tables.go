package schema

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"
	"text/template"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"
)

// ReadModelTables are the read-model tables, each created from its template
// in <dialect>/tables: first the table (with its primary key), then its
// secondary indexes. Projections rebuild into copies made from the same
// templates, so a rebuilt table has exactly the structure of a migrated one.
var ReadModelTables = []string{"online_sessions", "chat_members", "chat_messages", "app_status"}

// tableTemplate is a read-model table's DDL split into the CREATE TABLE
// statement and its CREATE INDEX statements.
type tableTemplate struct {
	table   *template.Template
	indexes []*template.Template
}

func loadTableTemplate(dialectName dialect.Name, table string) (tableTemplate, error) {
	root, err := dialectDir(dialectName)
	if err != nil {
		return tableTemplate{}, err
	}
	src, err := fs.ReadFile(migrations, root+"/tables/"+table+".sql")
	if err != nil {
		return tableTemplate{}, fmt.Errorf("schema: no template for table %s: %w", table, err)
	}
	var out tableTemplate
	for i, stmt := range strings.Split(string(src), "--bun:split") {
		t, err := template.New(table).Option("missingkey=error").Parse(stmt)
		if err != nil {
			return tableTemplate{}, fmt.Errorf("schema: template %s: %w", table, err)
		}
		if i == 0 {
			out.table = t
		} else {
			out.indexes = append(out.indexes, t)
		}
	}
	return out, nil
}

func dialectDir(name dialect.Name) (string, error) {
	switch name {
	case dialect.SQLite:
		return "sqlite", nil
	case dialect.PG:
		return "postgres", nil
	}
	return "", fmt.Errorf("schema: unsupported dialect %s", name)
}

func render(t *template.Template, tableName, suffix string) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, struct{ Table, Suffix string }{tableName, suffix}); err != nil {
		return "", err
	}
	return b.String(), nil
}

// CreateTable creates the table named as with the structure of the
// read-model table table, with its primary key but without its secondary
// indexes (bulk loads are faster without them; see CreateIndexes).
func CreateTable(ctx context.Context, db bun.IDB, table, as string) error {
	t, err := loadTableTemplate(db.Dialect().Name(), table)
	if err != nil {
		return err
	}
	stmt, err := render(t.table, as, "")
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("schema: create table %s: %w", as, err)
	}
	return nil
}

// CreateIndexes creates the secondary indexes of the read-model table table
// on the table named on, with suffix appended to each index name.
func CreateIndexes(ctx context.Context, db bun.IDB, table, on, suffix string) error {
	t, err := loadTableTemplate(db.Dialect().Name(), table)
	if err != nil {
		return err
	}
	for _, it := range t.indexes {
		stmt, err := render(it, on, suffix)
		if err != nil {
			return err
		}
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("schema: create indexes of %s: %w", on, err)
		}
	}
	return nil
}

// IndexNames returns the names of the secondary indexes of the read-model
// table table, with suffix appended, as CreateIndexes names them.
func IndexNames(dialectName dialect.Name, table, suffix string) ([]string, error) {
	t, err := loadTableTemplate(dialectName, table)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, it := range t.indexes {
		stmt, err := render(it, table, suffix)
		if err != nil {
			return nil, err
		}
		fields := strings.Fields(stmt[strings.Index(stmt, "CREATE INDEX"):])
		if len(fields) >= 3 {
			names = append(names, fields[2])
		}
	}
	return names, nil
}

// registerTableMigration adds the migration that creates every read-model
// table with its indexes, in one transaction.
func registerTableMigration(ms *migrate.Migrations) {
	ms.Add(migrate.Migration{
		Name:    "20261127000002",
		Comment: "readmodel_tables",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return m.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				for _, table := range ReadModelTables {
					if err := CreateTable(ctx, tx, table, table); err != nil {
						return err
					}
					if err := CreateIndexes(ctx, tx, table, table, ""); err != nil {
						return err
					}
				}
				return nil
			})
		},
	})
}
