package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// copyWriter writes rows in PostgreSQL's binary COPY format, which CockroachDB reads too. The
// ledger's hot tables have fixed columns of a few types, and writing their bytes directly costs a
// fraction of pgx's generic encoding, which converts every value through an interface and a plan
// lookup: on a 10,000-transfer batch that was a third of the batch's time.
type copyWriter struct {
	b []byte
}

// pgEpoch is the zero of PostgreSQL's binary timestamps, in Unix microseconds.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// uuidOID is the type of a uuid[] array's elements.
const uuidOID = 2950

func newCopyWriter(rowsHint, rowBytesHint int) *copyWriter {
	need := 19 + rowsHint*rowBytesHint + 2
	w := &copyWriter{}
	if p, ok := copyBuffers.Get().(*[]byte); ok && cap(*p) >= need {
		w.b = (*p)[:0]
	} else {
		w.b = make([]byte, 0, need)
	}
	w.b = append(w.b, "PGCOPY\n\xff\r\n\x00"...)
	w.b = binary.BigEndian.AppendUint32(w.b, 0) // flags: no OIDs
	w.b = binary.BigEndian.AppendUint32(w.b, 0) // no header extension
	return w
}

func (w *copyWriter) row(fields int) { w.b = binary.BigEndian.AppendUint16(w.b, uint16(fields)) }

func (w *copyWriter) null() { w.b = binary.BigEndian.AppendUint32(w.b, 0xffffffff) }

func (w *copyWriter) uuid(id [16]byte) {
	w.b = binary.BigEndian.AppendUint32(w.b, 16)
	w.b = append(w.b, id[:]...)
}

// uuidOrNull writes the zero UUID as NULL.
func (w *copyWriter) uuidOrNull(id [16]byte) {
	if id == [16]byte{} {
		w.null()
		return
	}
	w.uuid(id)
}

func (w *copyWriter) int64(v int64) {
	w.b = binary.BigEndian.AppendUint32(w.b, 8)
	w.b = binary.BigEndian.AppendUint64(w.b, uint64(v))
}

func (w *copyWriter) int32(v int32) {
	w.b = binary.BigEndian.AppendUint32(w.b, 4)
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(v))
}

// bytes writes a bytea.
func (w *copyWriter) bytes(b []byte) {
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(b)))
	w.b = append(w.b, b...)
}

// text writes a text value; s must be valid UTF-8 (PostgreSQL checks it).
func (w *copyWriter) text(s string) {
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(s)))
	w.b = append(w.b, s...)
}

// timestamp writes a timestamptz given in Unix microseconds.
func (w *copyWriter) timestamp(unixMicro int64) { w.int64(unixMicro - pgEpoch) }

// pgDateEpoch is the zero of PostgreSQL's binary dates, in days since the Unix epoch.
const pgDateEpoch = 10957

// date writes a date given in days since the Unix epoch (a transit.Day).
func (w *copyWriter) date(unixDays int32) { w.int32(unixDays - pgDateEpoch) }

// uuids writes a one-dimensional uuid[] (empty when ids is).
func (w *copyWriter) uuids(ids [][16]byte) {
	if len(ids) == 0 {
		w.b = binary.BigEndian.AppendUint32(w.b, 12)
		w.b = binary.BigEndian.AppendUint32(w.b, 0) // no dimensions
		w.b = binary.BigEndian.AppendUint32(w.b, 0) // no NULLs
		w.b = binary.BigEndian.AppendUint32(w.b, uuidOID)
		return
	}
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(20+20*len(ids)))
	w.b = binary.BigEndian.AppendUint32(w.b, 1) // one dimension
	w.b = binary.BigEndian.AppendUint32(w.b, 0) // no NULLs
	w.b = binary.BigEndian.AppendUint32(w.b, uuidOID)
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(ids)))
	w.b = binary.BigEndian.AppendUint32(w.b, 1) // lower bound
	for _, id := range ids {
		w.uuid(id)
	}
}

// copyRows sends what w holds to table's columns.
func copyRows(ctx context.Context, tx pgx.Tx, table string, columns []string, w *copyWriter) error {
	w.b = binary.BigEndian.AppendUint16(w.b, 0xffff) // end of data
	sql := fmt.Sprintf("COPY %s (%s) FROM STDIN BINARY", pgx.Identifier{table}.Sanitize(), strings.Join(columns, ", "))
	_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(w.b), sql)
	// The rows are sent (or will never be): their bytes serve the next batch's COPY.
	b := w.b
	w.b = nil
	copyBuffers.Put(&b)
	return err
}

// copyBuffers holds the bytes of COPYs sent, for the next ones to write into: a batch's rows are
// megabytes, written once a batch by every committer, which would otherwise be garbage after
// each. A buffer too small for the rows a writer expects is dropped for a larger one.
var copyBuffers sync.Pool
