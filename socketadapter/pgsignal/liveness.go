package pgsignal

import (
	"context"
	"database/sql"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/auraos/realtime/domain"
)

// Liveness tells the servers sharing a PostgreSQL database apart from dead
// ones with session advisory locks: each server holds its node's lock on a
// connection of its own for as long as it runs, and PostgreSQL releases the
// lock when that connection ends, as it does when the process dies. Nothing
// depends on clocks or timeouts chosen here.
type Liveness struct {
	db     *sql.DB
	schema string
	node   string
	log    *slog.Logger

	mu  sync.Mutex
	own *sql.Conn // holds this node's lock; nil while it is being taken again

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// keepInterval is how often the connection that holds this node's lock is
// checked (and the lock taken again if the connection was lost).
const keepInterval = 5 * time.Second

// OpenLiveness connects to dsn and takes node's lock. A running server that
// holds it (a second server wrongly given the same node id) makes it fail at
// once with an ECONFLICT error; a server that is ending the sessions this
// node's previous run left open is waited for, until ctx ends. Other errors
// are UNAVAILABLE.
func OpenLiveness(ctx context.Context, dsn, node string, log *slog.Logger) (*Liveness, error) {
	if log == nil {
		log = slog.Default()
	}
	db, current, err := connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	// A connection given back to the pool closes, so a lock taken on it is
	// never left behind on an idle connection.
	db.SetMaxIdleConns(0)
	l := &Liveness{db: db, schema: current, node: node, log: log, stop: make(chan struct{})}
	if err := l.takeOwn(ctx); err != nil {
		db.Close()
		return nil, err
	}
	l.wg.Add(1)
	go l.keep()
	return l, nil
}

func (l *Liveness) key(node string) int64 {
	h := fnv.New64a()
	h.Write([]byte("auraos-node-" + l.schema + "-" + node))
	return int64(h.Sum64())
}

// takeoverKey is the lock a server holds, beside a node's own lock, while it
// acts for that dead node, so that the node's next start can tell a takeover,
// which it waits for, from a running twin, which it refuses.
func (l *Liveness) takeoverKey(node string) int64 {
	h := fnv.New64a()
	h.Write([]byte("auraos-takeover-" + l.schema + "-" + node))
	return int64(h.Sum64())
}

// tryLock tries the session advisory lock key on c without waiting.
func tryLock(ctx context.Context, c *sql.Conn, key int64) (bool, error) {
	var ok bool
	err := c.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok)
	return ok, err
}

// takeOwn takes this node's lock on a connection of its own. When the lock
// is held, the takeover lock says by whom: a takeover holds it as long as it
// holds the node's lock, so once this connection has it the node's lock is
// either free or held by a running server.
func (l *Liveness) takeOwn(ctx context.Context) error {
	c, err := l.db.Conn(ctx)
	if err != nil {
		return unavailable("connect for the node lock", err)
	}
	key := l.key(l.node)
	ok, err := tryLock(ctx, c, key)
	if err == nil && !ok {
		tkey := l.takeoverKey(l.node)
		if _, err = c.ExecContext(ctx, "SELECT pg_advisory_lock($1)", tkey); err == nil {
			ok, err = tryLock(ctx, c, key)
			if _, uerr := c.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", tkey); err == nil {
				err = uerr
			}
		}
	}
	if err != nil {
		c.Close()
		return unavailable("take the node lock", err)
	}
	if !ok {
		c.Close()
		return domain.Errorf(domain.ECONFLICT, "node id %s is held by another running server; give each server its own node id", l.node)
	}
	l.mu.Lock()
	l.own = c
	l.mu.Unlock()
	return nil
}

// keep checks the lock's connection and, when it was lost (and with it the
// lock), takes the lock again.
func (l *Liveness) keep() {
	defer l.wg.Done()
	t := time.NewTicker(keepInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		own := l.own
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), keepInterval)
		err := own.PingContext(ctx)
		cancel()
		if err == nil {
			continue
		}
		l.log.Warn("lost the connection that holds this node's lock; taking it again", "node", l.node, "err", err)
		own.Close()
		ctx, cancel = context.WithTimeout(context.Background(), keepInterval)
		if err := l.takeOwn(ctx); err != nil {
			l.log.Warn("could not take this node's lock again; retrying", "node", l.node, "err", err)
		}
		cancel()
	}
}

// TakeOver takes the lock of another node if that node is not running. When
// ok, the caller may act for the dead node (end its sessions) and must call
// release when done; the node cannot start again meanwhile.
func (l *Liveness) TakeOver(ctx context.Context, node string) (release func(), ok bool, err error) {
	if node == l.node {
		return nil, false, errors.New("a node cannot take over its own lock")
	}
	c, err := l.db.Conn(ctx)
	if err != nil {
		return nil, false, unavailable("connect to take over a node", err)
	}
	// The takeover lock first, and released last: a node starting meanwhile
	// waits for this takeover instead of taking its lock for a twin's.
	key, tkey := l.key(node), l.takeoverKey(node)
	ok, err = tryLock(ctx, c, tkey)
	if err == nil && ok {
		ok, err = tryLock(ctx, c, key)
	}
	if err != nil || !ok {
		c.Close() // ending the session releases whatever it holds
		if err != nil {
			return nil, false, unavailable("try a node's lock", err)
		}
		return nil, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), keepInterval)
		defer cancel()
		_, _ = c.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", key)
		_, _ = c.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", tkey)
		c.Close()
	}, true, nil
}

// Close releases this node's lock and closes the connections.
func (l *Liveness) Close() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		l.mu.Lock()
		if l.own != nil {
			err = l.own.Close() // ending the session releases the lock
		}
		l.mu.Unlock()
		err = errors.Join(err, l.db.Close())
	})
	return err
}
