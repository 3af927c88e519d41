package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

// serve on its embedded broker, stopped and started again on the same database. With
// --embedded-kafka-data the broker keeps its log across the restart, so its offsets go on where
// the database's cursors stand and the events produced after the restart are consumed. Without
// it the new broker would start empty, at offset 0, below the database's cursors, and the events
// produced at those offsets would never be applied: serve refuses to start, and changes nothing.
func TestServeKeepsTheEmbeddedBrokersLogAcrossARestart(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	data := t.TempDir()
	city := loadtest.NewCity(7, 40, 2, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))
	regs := city.Registrations() // refused (no bank is registered), and recorded all the same
	processed := func() int {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM processed_events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// serve runs serve with extra flags, produces regs[from:to] and waits for want records.
	serve := func(extra []string, from, to, want int) {
		ctx := context.Background()
		srv := startServe(t, append([]string{"--database-url", url, "--http-addr", "127.0.0.1:0", "--embedded-kafka-addr", addr,
			"--partitions", "2", "--settle-grace", "0", "--log-level", "warn"}, extra...)...)
		brokers := srv.brokers
		if to > from {
			msgs := make([]kafkago.Message, 0, to-from)
			for _, e := range regs[from:to] {
				msgs = append(msgs, kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)})
			}
			p := kafka.NewProducer(strings.Split(brokers, ","), "card-events")
			if err := p.Produce(ctx, msgs...); err != nil {
				t.Fatal(err)
			}
			p.Close()
		}
		for deadline := time.Now().Add(60 * time.Second); processed() < want; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d events recorded, want %d:\n%s", processed(), want, srv.errs.String())
			}
		}
		if err := srv.stop(); err != nil {
			t.Fatalf("serve: %v\n%s", err, srv.errs.String())
		}
	}
	serve([]string{"--embedded-kafka-data", data}, 0, 30, 30)
	serve([]string{"--embedded-kafka-data", data}, 30, 40, 40) // ten more, after the restart
	// Without the log, serve refuses to start on this database's topic: the broker's offsets would
	// begin again below the cursors, and the events produced at them would never be applied.
	ctx := context.Background()
	var out, errs bytes.Buffer
	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = run(runCtx, []string{"serve", "--database-url", url, "--http-addr", "127.0.0.1:0", "--embedded-kafka-addr", addr,
		"--partitions", "2", "--log-level", "warn"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), refusal) || strings.Contains(out.String(), "serving HTTP") {
		t.Fatalf("serve on an empty in-memory broker with the database's cursors ahead: %v\n%s%s", err, out.String(), errs.String())
	}
	if n := processed(); n != 40 {
		t.Errorf("%d events recorded after the refusal, want 40", n)
	}
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct {
		flags  engineFlags
		refuse bool
	}{
		{engineFlags{topic: "card-events", partitions: 2}, true},
		{engineFlags{topic: "card-events", partitions: 2, embeddedData: data}, false},
		{engineFlags{topic: "card-events", partitions: 2, brokers: "kafka-1:9092"}, false},
		{engineFlags{topic: "other-events", partitions: 2}, false},
	} {
		err := refuseForgetfulBroker(ctx, st, &c.flags)
		if got := err != nil && strings.Contains(err.Error(), refusal); got != c.refuse {
			t.Errorf("%+v: %v, want a refusal %v", c.flags, err, c.refuse)
		}
	}
}
