package main

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/internal/pgtest"
)

// namingRegisterer registers collectors and notes the names of the series they describe.
type namingRegisterer struct {
	prometheus.Registerer
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([a-z0-9_]+)"`)

func (r *namingRegisterer) note(c prometheus.Collector) {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
}

func (r *namingRegisterer) Register(c prometheus.Collector) error {
	r.note(c)
	return r.Registerer.Register(c)
}

func (r *namingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.note(c)
	}
	r.Registerer.MustRegister(cs...)
}

// The dashboard shipped for operators queries only series the engine exports: every metric name
// in every panel's query is one serve registers.
func TestDashboardQueriesWhatTheEngineExports(t *testing.T) {
	st := pgtest.NewStore(t)
	reg := &namingRegisterer{Registerer: prometheus.NewRegistry(), names: map[string]bool{}}
	consumer.NewMetrics(reg)
	newServeMetrics(reg)
	registerClockMetrics(reg, st)
	registerStoreMetrics(reg, st)
	_, stop, err := startPurchases(context.Background(), st, reg)
	if err != nil {
		t.Fatal(err)
	}
	stop()

	raw, err := os.ReadFile("../../docs/grafana/joinin-engine.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`joinin_[a-z0-9_]+`)
	suffix := regexp.MustCompile(`_(bucket|sum|count)$`)
	queries := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			names := metric.FindAllString(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: %q names no engine series", p.Title, q.Expr)
			}
			for _, n := range names {
				if !reg.names[n] && !reg.names[suffix.ReplaceAllString(n, "")] {
					t.Errorf("panel %q queries %s, which the engine does not export", p.Title, n)
				}
			}
		}
	}
	if queries < 10 {
		t.Fatalf("only %d queries in the dashboard", queries)
	}
	for _, want := range []string{"joinin_events_total", "joinin_partition_lag", "joinin_dead_letters_total",
		"joinin_http_request_seconds", "joinin_holds_expired_total", "joinin_settlement_cycles_closed_total",
		"joinin_batch_conflict_retries_total", "joinin_store_transaction_retries_total"} {
		if !reg.names[want] {
			t.Errorf("the engine no longer exports %s", want)
		}
	}
}
