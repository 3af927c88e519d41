package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/events"
	joininhttp "github.com/joinincard/engine/http"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/postgres"
)

const (
	// httpReadHeaderTimeout bounds a client's request headers: slow clients cannot hold
	// connections open for free.
	httpReadHeaderTimeout = 5 * time.Second
	// httpReadTimeout and httpWriteTimeout bound a whole request and its answer: an
	// authorization or a registration takes milliseconds, so a minute is only ever a stuck client.
	httpReadTimeout  = time.Minute
	httpWriteTimeout = time.Minute
	// httpIdleTimeout closes keep-alive connections nobody uses.
	httpIdleTimeout = 2 * time.Minute
	// httpShutdownTimeout is how long requests in flight may finish after SIGTERM.
	httpShutdownTimeout = 10 * time.Second
)

type httpConfig struct {
	addr       string
	store      *postgres.Store
	brokers    []string
	topic      string
	tokenizer  *events.Tokenizer
	adminToken string
	metrics    prometheus.Gatherer
	log        *slog.Logger
	// features are the API's parts beside the registry: transit, purchases, medical.
	features []joininhttp.Feature
	// onRequest is told of every request answered (the metrics).
	onRequest func(route string, status int, took time.Duration)
}

type httpServer struct {
	addr string
	stop func()
}

// brokerPing checks that the brokers answer by asking for the topic's partitions.
type brokerPing struct {
	brokers []string
	topic   string
}

func (b brokerPing) Ping(ctx context.Context) error {
	_, err := kafka.Partitions(ctx, b.brokers, b.topic)
	return err
}

// minAdminTokenBytes is the shortest admin token served without a warning: 16 random
// characters of base64 are 96 bits, beyond guessing over HTTP. It warns rather than refuses, so
// that a test or a demo may keep a short one.
const minAdminTokenBytes = 16

// warnAdminToken warns of an admin token that is missing or short enough to guess.
func warnAdminToken(log *slog.Logger, token string) {
	if token == "" {
		log.Warn("no --admin-token configured: the registry endpoints answer 503")
	} else if len(token) < minAdminTokenBytes {
		log.Warn("the --admin-token is short enough to guess: use a random one of 32 characters or more",
			"bytes", len(token), "want_at_least", minAdminTokenBytes)
	}
}

// startHTTP listens on cfg.addr and serves the engine's HTTP edge until stop is called.
func startHTTP(ctx context.Context, cfg httpConfig) (*httpServer, error) {
	warnAdminToken(cfg.log, cfg.adminToken)
	srv := joininhttp.NewServer(joininhttp.Config{
		Store: cfg.store, Broker: brokerPing{cfg.brokers, cfg.topic}, Tokenizer: cfg.tokenizer,
		AdminToken: cfg.adminToken, Metrics: cfg.metrics, Log: cfg.log, Features: cfg.features, OnRequest: cfg.onRequest,
	})
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	hs := &nethttp.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	return &httpServer{addr: ln.Addr().String(), stop: func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			cfg.log.Warn("http shutdown", "err", err)
		}
		if err := <-served; err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			cfg.log.Warn("http server", "err", err)
		}
	}}, nil
}
