package console

import (
	"net/http"
	"slices"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/projections"
)

// rebuildProgress is the state of a projection's last rebuild from the
// console.
type rebuildProgress struct {
	Running  bool      `json:"running"`
	Through  uint64    `json:"through"` // commit position reached
	Head     uint64    `json:"head"`    // the log's head when it started
	Events   int       `json:"events"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// projectionView is one projection's line: its status and its rebuild.
type projectionView struct {
	Name       string           `json:"name"`
	Version    int              `json:"version"`
	Checkpoint string           `json:"checkpoint"`
	Head       string           `json:"head"`
	Lag        uint64           `json:"lag"`
	State      string           `json:"state"`
	Rebuild    *rebuildProgress `json:"rebuild,omitempty"`
}

func stateOf(s projections.Status) string {
	switch {
	case s.RebuildInProgress:
		return "rebuilding"
	case s.NeedsRebuild:
		return "needs rebuild"
	case !s.Started:
		return "not started"
	case s.Lag == 0:
		return "caught up"
	}
	return "catching up"
}

func (c *Console) projectionViews(r *http.Request) ([]projectionView, error) {
	st, err := c.cfg.Read.Projections(r.Context())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]projectionView, len(st))
	for i, s := range st {
		out[i] = projectionView{Name: s.Name, Version: s.Version, Checkpoint: s.Checkpoint.String(), Head: s.Head.String(), Lag: s.Lag, State: stateOf(s)}
		if p, ok := c.progress[s.Name]; ok {
			cp := *p
			out[i].Rebuild = &cp
			if cp.Running {
				out[i].State = "rebuilding"
			}
		}
	}
	return out, nil
}

// projections is the projections page: position, lag, state, the
// hash-chain head, and a rebuild button each.
func (c *Console) projections(w http.ResponseWriter, r *http.Request) {
	views, err := c.projectionViews(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	chain, ok, err := c.cfg.Read.ChainHead(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, "projections", "Projections", map[string]any{"Projections": views, "Chain": chain, "HasChain": ok, "CSRF": c.csrf})
}

// projectionsJSON is what the page polls while a rebuild runs.
func (c *Console) projectionsJSON(w http.ResponseWriter, r *http.Request) {
	views, err := c.projectionViews(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"projections": views})
}

// rebuild starts a rebuild of one projection beside its live tables (the
// server keeps serving from them and swaps when caught up). It needs the
// CSRF token; a second rebuild of the same projection while one runs is a
// 409. A browser is sent back to the projections page.
func (c *Console) rebuild(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(r) {
		http.Error(w, "a rebuild needs the console's CSRF token and the console's origin", http.StatusForbidden)
		return
	}
	name := r.PathValue("name")
	st, err := c.cfg.Read.Projections(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if !slices.ContainsFunc(st, func(s projections.Status) bool { return s.Name == name }) {
		c.fail(w, r, domain.Errorf(domain.EINVALID, "no projection is named %q", name))
		return
	}
	c.mu.Lock()
	if p, ok := c.progress[name]; ok && p.Running {
		c.mu.Unlock()
		c.fail(w, r, domain.Errorf(domain.ECONFLICT, "%s is being rebuilt already", name))
		return
	}
	p := &rebuildProgress{Running: true, Started: c.cfg.Now()}
	c.progress[name] = p
	c.rebuilds.Add(1)
	c.mu.Unlock()
	c.cfg.Logger.Info("console rebuild started", "projection", name, "address", r.RemoteAddr)
	go func() {
		defer c.rebuilds.Done()
		res, err := c.cfg.Read.Rebuild(c.ctx, name, func(through, head eventstore.Position) {
			c.mu.Lock()
			p.Through, p.Head = through.Commit, head.Commit
			c.mu.Unlock()
		})
		c.mu.Lock()
		defer c.mu.Unlock()
		p.Running, p.Finished, p.Events = false, c.cfg.Now(), res.Events
		if err != nil {
			p.Error = domain.ErrorMessage(err)
			c.cfg.Logger.Warn("console rebuild failed", "projection", name, "err", err)
			return
		}
		p.Through = res.Through.Commit
		if p.Head < p.Through {
			p.Head = p.Through
		}
		c.cfg.Logger.Info("console rebuild done", "projection", name, "events", res.Events, "took", res.Took)
	}()
	if r.Header.Get("X-CSRF-Token") != "" {
		writeJSON(w, http.StatusAccepted, map[string]any{"started": name})
		return
	}
	http.Redirect(w, r, Prefix+"/projections", http.StatusSeeOther)
}

func (c *Console) users(w http.ResponseWriter, r *http.Request) {
	users, err := c.cfg.Read.OnlineUsers(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, "users", "Online users", users)
}

// lastMessages is how many messages the rooms page shows per room.
const lastMessages = 3

func (c *Console) rooms(w http.ResponseWriter, r *http.Request) {
	rooms, err := c.cfg.Read.ChatRooms(r.Context(), lastMessages)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, "rooms", "Chat rooms", rooms)
}

func (c *Console) apps(w http.ResponseWriter, r *http.Request) {
	apps, err := c.cfg.Read.Apps(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, "apps", "App statuses", apps)
}
