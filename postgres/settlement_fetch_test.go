package postgres_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/joinincard/engine/settlement/bankfile"
)

// A bank's first fetch of a file that fails before the file is sent (the database slow, the
// bank's client gone, the engine stopping) is not its first fetch: the fetch after it gets the
// original, unmarked, and only the one after that a duplicate copy.
func TestFileFetchThatFailsLeavesTheOriginalForTheNext(t *testing.T) {
	ctx := context.Background()
	w, _, day := settledDay(t)
	const bank = "ISS-A"

	// The items are locked away, so that the fetch records itself and then cannot read them.
	lock, err := w.st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `LOCK TABLE settlement_items IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	var lost bytes.Buffer
	_, _, err = w.set.WriteFile(short, &lost, bank, day, bankfile.FormatXML, true)
	cancel()
	if rerr := lock.Rollback(ctx); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil || lost.Len() != 0 {
		t.Fatalf("a fetch that could not read the items: %v, %d bytes sent", err, lost.Len())
	}

	var first, second bytes.Buffer
	if _, dup, err := w.set.WriteFile(ctx, &first, bank, day, bankfile.FormatXML, true); err != nil || dup {
		t.Fatalf("the fetch after the failed one: duplicate %v, %v; want the original", dup, err)
	}
	if bytes.Contains(first.Bytes(), []byte("DUPL")) {
		t.Error("the original is marked as a copy")
	}
	if _, dup, err := w.set.WriteFile(ctx, &second, bank, day, bankfile.FormatXML, true); err != nil || !dup {
		t.Fatalf("the fetch after the original: duplicate %v, %v; want a copy", dup, err)
	}
	if !bytes.Contains(second.Bytes(), []byte("DUPL")) {
		t.Error("the copy is not marked")
	}
}
