package sqlstore

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// dialect holds what differs between SQLite and PostgreSQL.
type dialect interface {
	// timeValue encodes a commit time for the created_at column.
	timeValue(t time.Time) any
	// readTxOptions are the options of the transaction that reads a
	// subscription batch together with the head, from one snapshot.
	readTxOptions() *sql.TxOptions
	// classify turns a driver error into an EUNAVAILABLE or ECONFLICT error.
	classify(what string, err error) error
}

type sqliteDialect struct{}

func (sqliteDialect) timeValue(t time.Time) any { return t.UnixMicro() }

// A SQLite read transaction sees one snapshot of the WAL from its first read.
func (sqliteDialect) readTxOptions() *sql.TxOptions { return &sql.TxOptions{ReadOnly: true} }

func (sqliteDialect) classify(what string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_FULL:
			return eventstore.Unavailable(what+": the disk or database is full", err)
		case sqlite3.SQLITE_IOERR:
			return eventstore.Unavailable(what+": disk I/O error", err)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return eventstore.Unavailable(what+": the database is locked by another process", err)
		case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
			return eventstore.Unavailable(what+": the database file cannot be written", err)
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return eventstore.Unavailable(what+": the database file is corrupt", err)
		case sqlite3.SQLITE_CONSTRAINT:
			return domain.WrapError(domain.ECONFLICT, what+": constraint violation", err)
		}
	}
	return eventstore.Unavailable(what, err)
}

type pgDialect struct{}

func (pgDialect) timeValue(t time.Time) any { return t }

// Commits are serialized in position order, so any snapshot holds a prefix
// of the log; repeatable read keeps the head and the rows in one snapshot.
func (pgDialect) readTxOptions() *sql.TxOptions {
	return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
}

func (pgDialect) classify(what string, err error) error {
	var pe *pq.Error
	if errors.As(err, &pe) {
		switch {
		case pe.Code == pqerror.DiskFull:
			return eventstore.Unavailable(what+": the database server's disk is full", err)
		case pe.Code.Class() == pqerror.ClassIntegrityConstraintViolation:
			return domain.WrapError(domain.ECONFLICT, fmt.Sprintf("%s: constraint violation (%s)", what, pe.Message), err)
		case pe.Code.Class() == pqerror.ClassConnectionException,
			pe.Code.Class() == pqerror.ClassInsufficientResources,
			pe.Code.Class() == pqerror.ClassOperatorIntervention,
			pe.Code.Class() == pqerror.ClassSystemError:
			return eventstore.Unavailable(fmt.Sprintf("%s: %s", what, pe.Message), err)
		}
		return domain.WrapError(domain.EINTERNAL, what+": database error", err)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.As(err, &ne) || errors.As(err, &oe) {
		return eventstore.Unavailable(what+": lost the connection to PostgreSQL", err)
	}
	return eventstore.Unavailable(what, err)
}
