// Package console serves /console, the operators' and auditors' pages for
// what the Socket.IO Admin UI cannot show: the event log (filtered, newest
// first, followed live, one event with its causation chain), each
// projection's position, lag and state with a rebuild that shows its
// progress, the online users, the chat rooms and the apps. The pages are
// server-rendered HTML with a little JavaScript, embedded in the binary,
// and work on a phone.
//
// Every page needs the operators' credentials: HTTP Basic authentication
// with their username and password, or an admin token as `Authorization:
// Bearer`. It reads through the ReadSide interface it declares; cmd/auraos/app
// wires the concrete stores and read models.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/projections"
)

// Auth checks the operators' credentials; socketadapter.AdminCredentials
// implements it.
type Auth interface {
	// CheckPassword reports whether username and password are the
	// operators'.
	CheckPassword(username, password string) bool
	// CheckToken returns nil for an admin's token, an EAUTH error for a
	// token that does not verify and an EFORBIDDEN error for a user's.
	CheckToken(ctx context.Context, token string) error
}

// ReadSide is what the console reads and the one thing it does (rebuild a
// projection). Its errors are coded (EUNAVAILABLE when a store cannot
// answer, EINVALID for an unknown projection); others show as internal.
type ReadSide interface {
	// Head returns the position of the log's last event.
	Head(ctx context.Context) (eventstore.Position, error)
	// ReadAll reads the log forward from opts.From.
	ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error)
	// Projections returns every projection's status.
	Projections(ctx context.Context) ([]projections.Status, error)
	// Rebuild rebuilds the named projection beside its live tables and
	// swaps it in, calling progress after each batch.
	Rebuild(ctx context.Context, projection string, progress func(through, head eventstore.Position)) (projections.RebuildResult, error)
	// OnlineUsers lists the online users.
	OnlineUsers(ctx context.Context) ([]projections.OnlineUser, error)
	// ChatRooms lists the chat rooms with their member counts and their
	// last messages (at most last each).
	ChatRooms(ctx context.Context, last int) ([]projections.ChatRoom, error)
	// Apps lists the apps' statuses.
	Apps(ctx context.Context) ([]projections.App, error)
	// ChainHead returns the head of the log's hash chain (what `auraos
	// events head` prints) and true, or false while the store keeps no
	// chain; the console then shows "not available".
	ChainHead(ctx context.Context) (ChainHead, bool, error)
}

// ChainHead is the last link of the log's hash chain.
type ChainHead struct {
	// Position is the last chained event's log position.
	Position eventstore.Position
	// Hash is the chain's hash through that event, as `events head` prints it.
	Hash string
}

// Config is what a Console runs with.
type Config struct {
	// Auth checks every request's credentials. Required.
	Auth Auth
	// Read is what the pages show. Required.
	Read ReadSide
	// Logger receives refusals and rebuild outcomes (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock of the rebuild progress (default time.Now).
	Now func() time.Time
}

// Console is the /console handler. Create it with New and stop its
// rebuilds with Close.
type Console struct {
	cfg   Config
	pages map[string]*template.Template
	csrf  string // the token a state-changing request must carry
	mux   *http.ServeMux

	ctx      context.Context // ends at Close; parent of rebuilds
	cancel   context.CancelFunc
	rebuilds sync.WaitGroup
	mu       sync.Mutex
	progress map[string]*rebuildProgress // projection → its last rebuild
}

//go:embed templates/*.html static/*
var files embed.FS

// Prefix is where the console is mounted.
const Prefix = "/console"

// New returns the console over cfg. It returns an EINVALID error without
// Auth or Read.
func New(cfg Config) (*Console, error) {
	if cfg.Auth == nil || cfg.Read == nil {
		return nil, domain.Errorf(domain.EINVALID, "the console needs credentials and a read side")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pages := map[string]*template.Template{}
	for _, page := range []string{"events", "event", "projections", "users", "rooms", "apps"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, err
		}
		pages[page] = t
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	ctx, cancel := context.WithCancel(context.Background())
	c := &Console{cfg: cfg, pages: pages, csrf: hex.EncodeToString(token), ctx: ctx, cancel: cancel, progress: map[string]*rebuildProgress{}}
	static, _ := fs.Sub(files, "static")
	mux := http.NewServeMux()
	mux.Handle("GET "+Prefix+"/static/", http.StripPrefix(Prefix+"/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET "+Prefix+"/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"/events", http.StatusSeeOther)
	})
	mux.HandleFunc("GET "+Prefix+"/events", c.events)
	mux.HandleFunc("GET "+Prefix+"/events.json", c.eventsJSON)
	mux.HandleFunc("GET "+Prefix+"/events/{position}", c.event)
	mux.HandleFunc("GET "+Prefix+"/projections", c.projections)
	mux.HandleFunc("GET "+Prefix+"/projections.json", c.projectionsJSON)
	mux.HandleFunc("POST "+Prefix+"/projections/{name}/rebuild", c.rebuild)
	mux.HandleFunc("GET "+Prefix+"/users", c.users)
	mux.HandleFunc("GET "+Prefix+"/rooms", c.rooms)
	mux.HandleFunc("GET "+Prefix+"/apps", c.apps)
	c.mux = mux
	return c, nil
}

// ServeHTTP serves the console to operators: a request without valid
// credentials gets 401 with a WWW-Authenticate challenge (403 for a user's
// token), and every answer says not to cache it.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if code, ok := c.authorized(r); !ok {
		if code == domain.EFORBIDDEN {
			http.Error(w, "the token is not an admin's", http.StatusForbidden)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="auraos console", charset="UTF-8"`)
		http.Error(w, "the console needs the operators' username and password, or an admin token", http.StatusUnauthorized)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	c.mux.ServeHTTP(w, r)
}

// authorized checks Basic credentials or a Bearer token; the code says why
// not.
func (c *Console) authorized(r *http.Request) (string, bool) {
	if user, pw, ok := r.BasicAuth(); ok {
		if c.cfg.Auth.CheckPassword(user, pw) {
			return "", true
		}
		c.cfg.Logger.Info("console request refused", "code", domain.EAUTH, "reason", "wrong username or password", "address", r.RemoteAddr)
		return domain.EAUTH, false
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		err := c.cfg.Auth.CheckToken(r.Context(), strings.TrimSpace(tok))
		if err == nil {
			return "", true
		}
		c.cfg.Logger.Info("console request refused", "code", domain.ErrorCode(err), "reason", domain.ErrorMessage(err), "address", r.RemoteAddr)
		return domain.ErrorCode(err), false
	}
	return domain.EAUTH, false
}

// Close cancels the rebuilds in progress and waits for them to stop; the
// live tables stay as they were. It is safe to call more than once.
func (c *Console) Close() {
	c.cancel()
	c.rebuilds.Wait()
}

// sameOrigin is the CSRF check of a state-changing request: it must carry
// the console's token (rendered into its pages, which other origins cannot
// read) and, when the browser says where it comes from, come from this
// origin.
func (c *Console) sameOrigin(r *http.Request) bool {
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		tok = r.PostFormValue("csrf")
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(c.csrf)) != 1 {
		return false
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// fail answers a failed read: the code's status and a client-safe message.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := domain.ErrorCode(err)
	status, msg := http.StatusInternalServerError, "internal error"
	switch code {
	case domain.EINVALID:
		status, msg = http.StatusBadRequest, domain.ErrorMessage(err)
	case domain.EUNAVAILABLE:
		status, msg = http.StatusServiceUnavailable, domain.ErrorMessage(err)
	case domain.ECONFLICT:
		status, msg = http.StatusConflict, domain.ErrorMessage(err)
	case domain.EFORBIDDEN:
		status, msg = http.StatusForbidden, domain.ErrorMessage(err)
	}
	if status >= 500 {
		c.cfg.Logger.Warn("console request failed", "path", r.URL.Path, "code", code, "err", err)
	}
	http.Error(w, msg, status)
}

// render writes a page with the layout.
func (c *Console) render(w http.ResponseWriter, r *http.Request, page, title string, data any) {
	var b strings.Builder
	err := c.pages[page].Execute(&b, map[string]any{"Title": title, "Page": page, "CSRF": c.csrf, "Data": data})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	},
	"percent": func(through, head uint64) int {
		if head == 0 {
			return 100
		}
		p := int(through * 100 / head)
		return min(p, 100)
	},
}
