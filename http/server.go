package http

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// Store is what the HTTP edge needs of the database.
type Store interface {
	// Ingest decides and applies events in one transaction, as the Kafka consumer does.
	Ingest(ctx context.Context, cursors []postgres.Cursor, msgs []clearing.Message) (*clearing.Decision, error)
	// Card returns the card that token names (its own, physical or digital token), or an error
	// wrapping postgres.ErrNotFound.
	Card(ctx context.Context, token string) (*cards.Card, error)
	// Balance returns an account's current balance.
	Balance(ctx context.Context, id ledger.ID) (postgres.AccountBalance, error)
	// RegisterParty registers a party and opens its account; again with the same name is a no-op,
	// with another name an error wrapping postgres.ErrAccountConflict.
	RegisterParty(ctx context.Context, kind clearing.PartyKind, id, name string) (postgres.Party, error)
	// SetPartyBank records the bank that settles a merchant's, operator's or insurance fund's
	// clearing account, replacing the one before; an error wrapping postgres.ErrNotFound when
	// the party or the bank is not registered.
	SetPartyBank(ctx context.Context, kind clearing.PartyKind, id, bank string) error
	// RegisterPartyBank records the bank that settles a party that has none, and changes
	// nothing when it has this one; a party settled by another bank is left as it is, with a
	// *postgres.PartyBankConflictError.
	RegisterPartyBank(ctx context.Context, kind clearing.PartyKind, id, bank string) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
}

var _ Store = (*postgres.Store)(nil)

// Pinger is a dependency /readyz checks: the Kafka broker.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config is what a Server is built from.
type Config struct {
	Store  Store  // required
	Broker Pinger // required: the broker, checked by /readyz
	// Tokenizer turns personal numbers into tokens; it must hold the producers' key, so that the
	// HTTP edge and the Kafka producers give one number one token. Required.
	Tokenizer *events.Tokenizer
	// AdminToken is the bearer token of the admin endpoints. Empty, they answer 503: an admin API
	// without a credential is refused, never opened.
	AdminToken string
	// Metrics is served on /metrics; nil serves no series.
	Metrics prometheus.Gatherer
	// Log receives the access log and the detail of internal errors; nil is slog.Default().
	Log *slog.Logger
	// Now is the clock: card status and key checks. Nil is time.Now.
	Now func() time.Time
	// Features are the parts of the API beside the registry (transit, purchases, medical), each
	// in a file of its own, registering its routes with the server.
	Features []Feature
	// OnRequest, if set, is told of every request answered: its route's pattern (never the path),
	// its status and how long it took. The engine's metrics use it.
	OnRequest func(route string, status int, took time.Duration)
}

// Feature is a part of the API that registers its own routes. Its handlers use the server's
// helpers (writeJSON, writeError, decodeBody, requireAdmin) so that every endpoint answers alike.
type Feature interface {
	Routes(s *Server) []FeatureRoute
}

// FeatureRoute is one endpoint of a Feature. Admin routes get the admin bearer check; others do
// their own authentication (an operator's or a merchant's API key).
type FeatureRoute struct {
	Method string
	Path   string
	Admin  bool
	// Page marks a page for people's browsers (the finance page): it answers HTML or a download,
	// authenticates by its own session cookie, never by a bearer token, and is listed by Pages,
	// not Routes. Routes is the API that docs/openapi.json documents for programs; a page's
	// forms and addresses belong to the page and change with it. Admin must be false.
	Page bool
	// Query marks a route whose handler reads query parameters and refuses those it does not
	// take (onlyParameters). Without it the route takes none: any query parameter is refused
	// with 400 before the handler runs, never ignored, since an ignored parameter answers with
	// more than was asked (a filter) or does what the client asked not to (?dry_run=true).
	Query   bool
	Handler http.HandlerFunc
}

// Route is one endpoint: its method and its net/http pattern path, e.g. "/v1/cards/{token}".
type Route struct {
	Method  string
	Pattern string
	// Admin routes require the admin bearer token.
	Admin bool
}

// Server is the engine's HTTP edge. It is safe for concurrent use.
type Server struct {
	store     Store
	broker    Pinger
	tokenizer *events.Tokenizer
	// adminHash is the SHA-256 of the admin token: comparing hashes in constant time leaks
	// neither the token's bytes nor its length.
	adminHash [sha256.Size]byte
	adminSet  bool
	// adminGuesses throttles the clients that present a wrong admin token, as a bearer token to
	// the API or at the finance page's login: one count per client for both doors.
	adminGuesses loginThrottles
	log          *slog.Logger
	now          func() time.Time

	routes []Route
	// pages are the routes of pages for people's browsers (FeatureRoute.Page), apart from the API.
	pages   []Route
	handler http.Handler
	// onRequest is Config.OnRequest.
	onRequest func(route string, status int, took time.Duration)
	// lastOffset is the last offset given to a message ingested over HTTP (see nextOffset).
	lastOffset atomic.Int64
}

// NewServer builds a Server. It panics if a required part of cfg is missing: that is a wiring
// bug, found at start, not on the first request.
func NewServer(cfg Config) *Server {
	switch {
	case cfg.Store == nil:
		panic("http: NewServer without a Store")
	case cfg.Broker == nil:
		panic("http: NewServer without a Broker")
	case cfg.Tokenizer == nil:
		panic("http: NewServer without a Tokenizer")
	}
	s := &Server{
		store: cfg.Store, broker: cfg.Broker, tokenizer: cfg.Tokenizer,
		adminSet: cfg.AdminToken != "", adminHash: sha256.Sum256([]byte(cfg.AdminToken)),
		log: cfg.Log, now: cfg.Now, onRequest: cfg.OnRequest,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	metrics := cfg.Metrics
	if metrics == nil {
		metrics = prometheus.NewRegistry()
	}

	mux := http.NewServeMux()
	handle := func(method, path string, admin, query bool, h http.Handler) {
		s.routes = append(s.routes, Route{Method: method, Pattern: path, Admin: admin})
		if !query {
			h = noParameters(s, h)
		}
		if admin {
			h = s.requireAdmin(h)
		}
		mux.Handle(method+" "+path, h)
	}
	// The probes of load balancers and Prometheus answer whatever their query says.
	handle(http.MethodGet, "/healthz", false, true, http.HandlerFunc(s.handleHealth))
	handle(http.MethodGet, "/readyz", false, true, http.HandlerFunc(s.handleReady))
	handle(http.MethodGet, "/metrics", false, true, s.metricsHandler(metrics))
	handle(http.MethodPost, "/v1/parties", true, false, http.HandlerFunc(s.handleRegisterParty))
	handle(http.MethodPut, "/v1/parties/{kind}/{id}/settlement-bank", true, false, http.HandlerFunc(s.handleSetPartyBank))
	handle(http.MethodPost, "/v1/cards", true, false, http.HandlerFunc(s.handleRegisterCard))
	handle(http.MethodGet, "/v1/cards/{token}", true, false, http.HandlerFunc(s.handleGetCard))
	handle(http.MethodPost, "/v1/cards/{token}/status", true, false, http.HandlerFunc(s.handleCardStatus))
	for _, f := range cfg.Features {
		for _, fr := range f.Routes(s) {
			if !fr.Page {
				handle(fr.Method, fr.Path, fr.Admin, fr.Query, fr.Handler)
				continue
			}
			if fr.Admin {
				panic("http: a page route " + fr.Path + " marked admin: pages check their own session")
			}
			s.pages = append(s.pages, Route{Method: fr.Method, Pattern: fr.Path})
			mux.Handle(fr.Method+" "+fr.Path, fr.Handler)
		}
	}

	// The mux answers a wrong method or an unknown path in plain text; these answer in JSON, and
	// a page's in plain text, for a person.
	allowed := map[string][]string{}
	for _, rt := range s.routes {
		allowed[rt.Pattern] = append(allowed[rt.Pattern], rt.Method)
	}
	pagePaths := map[string]bool{}
	for _, rt := range s.pages {
		allowed[rt.Pattern] = append(allowed[rt.Pattern], rt.Method)
		pagePaths[rt.Pattern] = true
	}
	for path, methods := range allowed {
		if slices.Contains(methods, http.MethodGet) {
			methods = append(methods, http.MethodHead)
		}
		allow := strings.Join(methods, ", ")
		page := pagePaths[path]
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			if page {
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			s.writeError(w, r, Errorf(EMETHOD, "method not allowed, want %s", allow))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, Errorf(ENOTFOUND, "no such endpoint"))
	})
	s.handler = s.observe(mux)
	return s
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes lists the server's API endpoints in registration order: what docs/openapi.json
// documents. Pages for people's browsers are listed by Pages.
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// Pages lists the routes of the pages for people's browsers (the finance page), in registration
// order: HTML and downloads behind a session cookie, not part of the API.
func (s *Server) Pages() []Route { return slices.Clone(s.pages) }

// observe wraps the mux with the access log and turns a handler's panic into a 500.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now() // wall time for the duration, whatever the injected clock says
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "handler panic", "method", r.Method, "route", r.Pattern,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if sw.status == 0 {
					s.writeError(sw, r, Errorf(EINTERNAL, "internal error"))
				}
			}
			// The route's pattern, never the path: a path may carry what a client should not have
			// sent (a card number where a token belongs), and the log must not keep it.
			// Per request at DEBUG: at thousands of authorizations a second, a line each at INFO
			// would cost more than the request. A server fault is a warning.
			level := slog.LevelDebug
			if sw.status >= 500 {
				level = slog.LevelWarn
			}
			took := time.Since(start)
			s.log.Log(r.Context(), level, "http request", "method", r.Method, "route", r.Pattern,
				"status", sw.status, "duration_ms", took.Milliseconds())
			if s.onRequest != nil {
				s.onRequest(r.Pattern, sw.status, took)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (flushing, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// noParameters refuses a request whose query names any parameter, for a route that takes none.
func noParameters(s *Server, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" {
			if err := onlyParameters(r); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// requireAdmin lets a request through only with the admin bearer token.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.adminSet {
			s.writeError(w, r, Errorf(EUNAVAILABLE, "admin token not configured"))
			return
		}
		auth := r.Header.Get("Authorization")
		scheme, token, ok := strings.Cut(auth, " ")
		if auth == "" || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="joinin-admin"`)
			s.writeError(w, r, Errorf(EUNAUTHORIZED, "missing bearer token"))
			return
		}
		// A client that has failed too often waits, its token not looked at, as at the finance
		// page's login: the same token opens both.
		wait, right := s.adminGuesses.check(loginClient(r), s.now(), func() bool {
			got := sha256.Sum256([]byte(token))
			return subtle.ConstantTimeCompare(got[:], s.adminHash[:]) == 1
		})
		switch {
		case wait > 0:
			secs := retryAfterSeconds(wait)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			s.writeError(w, r, Errorf(ETOOMANY, "too many requests with a wrong admin token from this client: try again in %d s", secs))
			return
		case !right:
			s.writeError(w, r, Errorf(EFORBIDDEN, "invalid admin token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleHealth answers while the process is alive; it checks nothing else.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// readyTimeout bounds the readiness checks: a load balancer probes every few seconds, and a
// database or broker that takes longer than this to answer a ping cannot serve a payment either.
const readyTimeout = 2 * time.Second

type readyView struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// handleReady answers 200 when the database and the broker both answer a ping in time.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	checks := []struct {
		name string
		dep  Pinger
	}{{"store", s.store}, {"broker", s.broker}}
	// Buffered for every check: a ping that outlives the timeout still finishes its send and its
	// goroutine ends, with no one waiting for it.
	results := make(chan result, len(checks))
	for _, c := range checks {
		go func() { results <- result{c.name, c.dep.Ping(ctx)} }()
	}
	failed := map[string]error{}
	for _, c := range checks {
		failed[c.name] = fmt.Errorf("no answer within %s", readyTimeout)
	}
collect:
	for range checks {
		select {
		case res := <-results:
			failed[res.name] = res.err
		case <-ctx.Done():
			break collect
		}
	}
	view := readyView{Status: "ready", Checks: map[string]string{}}
	var down []string
	for _, c := range checks {
		if err := failed[c.name]; err != nil {
			s.log.WarnContext(r.Context(), "not ready", "check", c.name, "err", err)
			view.Checks[c.name] = "unavailable"
			down = append(down, c.name)
		} else {
			view.Checks[c.name] = "ok"
		}
	}
	if len(down) > 0 {
		s.writeError(w, r, Errorf(EUNAVAILABLE, "not ready: %s", strings.Join(down, ", ")))
		return
	}
	s.writeJSON(w, r, http.StatusOK, view)
}

const (
	// metricsMaxInFlight bounds concurrent scrapes: one Prometheus and one person with curl. More
	// are answered 503 rather than multiplying the cost of gathering.
	metricsMaxInFlight = 2
	// metricsTimeout bounds a scrape; Prometheus's own default scrape timeout is 10 s.
	metricsTimeout = 10 * time.Second
)

// metricsHandler serves g in the Prometheus exposition format, every option set here.
func (s *Server) metricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog: promLogger{s.log},
		// A broken collector must not hide every other series.
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            nil, // the handler's own error counter would need a Registerer
		DisableCompression:  false,
		OfferedCompressions: []promhttp.Compression{promhttp.Identity, promhttp.Gzip},
		MaxRequestsInFlight: metricsMaxInFlight,
		CoalesceGather:      false, // experimental
		Timeout:             metricsTimeout,
		EnableOpenMetrics:   false,
	})
}

// promLogger adapts slog to promhttp's Logger.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Error("metrics", "err", fmt.Sprint(v...)) }
