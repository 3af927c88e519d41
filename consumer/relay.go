package consumer

import (
	"context"
	"encoding/hex"
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/postgres"
)

// relayInterval is how often the relay looks for new dead letters: operators see a poison
// message within a second, and an idle engine asks its database once a second.
const relayInterval = time.Second

// DeadLetterStore is where dead letters wait, written with the batches that produced them.
type DeadLetterStore interface {
	UnrelayedDeadLetters(ctx context.Context) ([]postgres.DeadLetter, error)
	MarkRelayed(ctx context.Context, dls []postgres.DeadLetter) error
}

var _ DeadLetterStore = (*postgres.Store)(nil)

// Relay copies dead letters from the database to the dead-letter topic, after the batches that
// wrote them committed: at least once, keyed by the original event id (never by the original
// message's key, which a broken producer may have made a card number), with the stored bytes as
// the value and the reason, source partition and offset as headers, so a reader can drop the rare
// repeat by (source, offset). The bytes are the original ones unless they held what may be a
// personal number: then they are redacted, the reason says what was taken out, and the
// joinin-payload-hmac header carries the hex HMAC-SHA256 of the original bytes under the token key.
type Relay struct {
	Store    DeadLetterStore
	Producer *kafka.Producer
	// Tokenizer holds the token key, for the HMAC of a dead letter stored in clear before dead
	// letters were redacted: the relay redacts those on their way out. Nil relays them redacted
	// without the HMAC.
	Tokenizer *events.Tokenizer
	Log       *slog.Logger
	Metrics   *Metrics
}

// Run relays until ctx is done.
func (r *Relay) Run(ctx context.Context) {
	t := time.NewTicker(relayInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := r.RelayOnce(ctx); err != nil && ctx.Err() == nil {
			r.Log.Warn("relay dead letters", "err", err)
		}
	}
}

// RelayOnce relays the dead letters waiting now and returns how many it relayed.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	total := 0
	for {
		dls, err := r.Store.UnrelayedDeadLetters(ctx)
		if err != nil || len(dls) == 0 {
			return total, err
		}
		var fingerprint func([]byte) []byte
		if r.Tokenizer != nil {
			fingerprint = r.Tokenizer.Fingerprint
		}
		msgs := make([]kafkago.Message, len(dls))
		for i := range dls {
			// Stored redacted already, it comes back as it is.
			dl := clearing.RedactDeadLetter(dls[i].DeadLetter, fingerprint)
			key := []byte(dl.Source + "@" + strconv.FormatInt(dl.Offset, 10))
			if dl.EventID != uuid.Nil {
				key = []byte(dl.EventID.String())
			}
			headers := []kafkago.Header{
				{Key: "joinin-kind", Value: []byte(dl.Kind)},
				{Key: "joinin-reason", Value: []byte(dl.Reason)},
				{Key: "joinin-source", Value: []byte(dl.Source)},
				{Key: "joinin-offset", Value: []byte(strconv.FormatInt(dl.Offset, 10))},
			}
			if dl.Fingerprint != nil {
				headers = append(headers, kafkago.Header{Key: "joinin-payload-hmac", Value: []byte(hex.EncodeToString(dl.Fingerprint))})
			}
			msgs[i] = kafkago.Message{Key: key, Value: dl.Raw, Headers: headers}
		}
		if err := r.Producer.Produce(ctx, msgs...); err != nil {
			return total, err
		}
		if err := r.Store.MarkRelayed(ctx, dls); err != nil {
			return total, err
		}
		total += len(dls)
		if r.Metrics != nil {
			r.Metrics.DeadLetters.Add(float64(len(dls)))
		}
	}
}
