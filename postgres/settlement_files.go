package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
)

var (
	// ErrFileChanged is returned when a file written again differs from the checksum recorded
	// when it was first written: a fault of the engine, never to be sent.
	ErrFileChanged = errors.New("settlement file differs from its recorded checksum")
	// ErrAckConflict is returned for a second, different acknowledgement of one file.
	ErrAckConflict = errors.New("the file was acknowledged before with another report")
	// ErrAckInvalid is returned for an acknowledgement that does not fit the file it names.
	ErrAckInvalid = errors.New("acknowledgement does not fit its file")
)

// FileRecord is a bank's settlement file of a cycle as recorded: its header and checksums.
type FileRecord struct {
	Header bankfile.Header
	XML    bankfile.ManifestEntry
	CSV    bankfile.ManifestEntry
}

// writeFiles numbers and fingerprints every registered bank's file of cycle c, a bank at a time;
// a bank whose file exists is left as it is. A bank with no items in the cycle gets a file
// without items: banks expect one file a cycle, and a missing one is a gap.
func (s *Settlement) writeFiles(ctx context.Context, c Cycle) error {
	banks, err := s.banks(ctx)
	if err != nil {
		return err
	}
	for _, b := range banks {
		err := s.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
			// Closes of the cycle running at once write its files one after the other: the
			// first numbers a bank's file, the next finds it.
			if _, err := lockCycle(ctx, tx, c.Date); err != nil {
				return err
			}
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM settlement_files WHERE bank_id = $1 AND cycle_date = $2)`,
				b.id, settlement.DateTime(c.Date)).Scan(&exists); err != nil {
				return fmt.Errorf("look up the file of %s: %w", b.id, err)
			}
			if exists {
				return nil
			}
			var seq int64
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(sequence), 0) + 1 FROM settlement_files WHERE bank_id = $1`, b.id).Scan(&seq); err != nil {
				return fmt.Errorf("number the file of %s: %w", b.id, err)
			}
			var t settlement.FileTotals
			if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(abs(amount)), 0)::BIGINT, coalesce(sum(amount), 0)::BIGINT
				FROM settlement_items WHERE cycle_date = $1 AND bank_id = $2`, settlement.DateTime(c.Date), b.id).
				Scan(&t.Entries, &t.ControlSum, &t.Net); err != nil {
				return fmt.Errorf("total the file of %s: %w", b.id, err)
			}
			h := settlement.FileHeader(b.id, b.name, c.Date, c.ValueDate, seq, c.ClosingAt, t)
			var sums [2]bankfile.ManifestEntry
			for i, f := range []bankfile.Format{bankfile.FormatXML, bankfile.FormatCSV} {
				e, err := writeFile(ctx, tx.Tx, io.Discard, h, f)
				if err != nil {
					return err
				}
				sums[i] = e
			}
			_, err := tx.Exec(ctx, `INSERT INTO settlement_files (bank_id, cycle_date, sequence, message_id, created_at, entries,
					control_sum, net, xml_sha256, xml_size, csv_sha256, csv_size)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
				b.id, settlement.DateTime(c.Date), seq, h.MessageID, h.CreatedAt, t.Entries, t.ControlSum, t.Net,
				hex.EncodeToString(sums[0].SHA256[:]), sums[0].Size, hex.EncodeToString(sums[1].SHA256[:]), sums[1].Size)
			if err != nil {
				return fmt.Errorf("record the file of %s: %w", b.id, err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("file of %s for cycle %s: %w", b.id, c.Date, err)
		}
	}
	return nil
}

type bank struct{ id, name string }

// banks lists the registered banks, in id order.
func (s *Settlement) banks(ctx context.Context) ([]bank, error) {
	rows, err := s.store.pool.Query(ctx, `SELECT party_id, name FROM parties WHERE kind = 'bank' ORDER BY party_id`)
	if err != nil {
		return nil, fmt.Errorf("list banks: %w", err)
	}
	defer rows.Close()
	var out []bank
	for rows.Next() {
		var b bank
		if err := rows.Scan(&b.id, &b.name); err != nil {
			return nil, fmt.Errorf("list banks: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// writeFile writes the file with header h in format f to w, its items streamed from the
// database in id order, and describes what it wrote.
func writeFile(ctx context.Context, q querier, w io.Writer, h bankfile.Header, f bankfile.Format) (bankfile.ManifestEntry, error) {
	rows, err := q.Query(ctx, `SELECT `+itemColumns+` FROM settlement_items i WHERE i.cycle_date = $1 AND i.bank_id = $2 ORDER BY i.item_id`,
		settlement.DateTime(h.CycleDate), h.BankID)
	if err != nil {
		return bankfile.ManifestEntry{}, fmt.Errorf("read the items of %s: %w", h.BankID, err)
	}
	defer rows.Close()
	var failed error
	items := iter.Seq[bankfile.Item](func(yield func(bankfile.Item) bool) {
		for rows.Next() {
			it, err := scanItem(rows)
			if err != nil {
				failed = err
				return
			}
			fi, err := settlement.FileItem(it)
			if err != nil {
				failed = err
				return
			}
			if !yield(fi) {
				return
			}
		}
		failed = rows.Err()
	})
	hw := &hashWriter{w: w, h: sha256.New()}
	write := bankfile.WriteXML
	if f == bankfile.FormatCSV {
		write = bankfile.WriteCSV
	}
	err = write(hw, h, items)
	if failed != nil {
		return bankfile.ManifestEntry{}, fmt.Errorf("read the items of %s: %w", h.BankID, failed)
	}
	if err != nil {
		return bankfile.ManifestEntry{}, fmt.Errorf("write the %s file of %s: %w", f, h.BankID, err)
	}
	e := bankfile.ManifestEntry{Name: settlement.FileName(h, f), Format: f, BankID: h.BankID, CycleDate: h.CycleDate,
		Sequence: h.Sequence, Size: hw.n}
	copy(e.SHA256[:], hw.h.Sum(nil))
	return e, nil
}

// hashWriter counts and hashes what passes through it.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// File returns the record of bank's file of cycle d, or ErrNotFound.
func (s *Settlement) File(ctx context.Context, bankID string, d settlement.Date) (FileRecord, error) {
	var (
		r                   FileRecord
		seq, n, sum, net    int64
		msg, xmlSum, csvSum string
		created             time.Time
		xmlSize, csvSize    int64
		value               time.Time
		name                string
	)
	err := s.store.pool.QueryRow(ctx, `SELECT f.sequence, f.message_id, f.created_at, f.entries, f.control_sum, f.net,
			f.xml_sha256, f.xml_size, f.csv_sha256, f.csv_size, c.value_date, p.name
		FROM settlement_files f JOIN settlement_cycles c ON c.cycle_date = f.cycle_date
		JOIN parties p ON p.kind = 'bank' AND p.party_id = f.bank_id
		WHERE f.bank_id = $1 AND f.cycle_date = $2`, bankID, settlement.DateTime(d)).
		Scan(&seq, &msg, &created, &n, &sum, &net, &xmlSum, &xmlSize, &csvSum, &csvSize, &value, &name)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("file of %s for cycle %s: %w", bankID, d, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read the file of %s for cycle %s: %w", bankID, d, err)
	}
	r.Header = settlement.FileHeader(bankID, name, d, settlement.DateOf(value), seq, created,
		settlement.FileTotals{Entries: n, ControlSum: sum, Net: net})
	if r.Header.MessageID != msg {
		return r, fmt.Errorf("file of %s for cycle %s: recorded as %s, derived as %s", bankID, d, msg, r.Header.MessageID)
	}
	entry := func(f bankfile.Format, sum string, size int64) (bankfile.ManifestEntry, error) {
		e := bankfile.ManifestEntry{Name: settlement.FileName(r.Header, f), Format: f, BankID: bankID, CycleDate: d, Sequence: seq, Size: size}
		b, err := hex.DecodeString(sum)
		if err != nil || len(b) != len(e.SHA256) {
			return e, fmt.Errorf("file of %s for cycle %s: bad recorded checksum", bankID, d)
		}
		copy(e.SHA256[:], b)
		return e, nil
	}
	if r.XML, err = entry(bankfile.FormatXML, xmlSum, xmlSize); err != nil {
		return r, err
	}
	if r.CSV, err = entry(bankfile.FormatCSV, csvSum, csvSize); err != nil {
		return r, err
	}
	return r, nil
}

// Manifest lists the files of cycle d with their checksums: bank's two files, or every bank's
// when bank is empty.
func (s *Settlement) Manifest(ctx context.Context, bankID string, d settlement.Date) (bankfile.Manifest, error) {
	var ids []string
	if bankID != "" {
		ids = []string{bankID}
	} else {
		rows, err := s.store.pool.Query(ctx, `SELECT bank_id FROM settlement_files WHERE cycle_date = $1 ORDER BY bank_id`, settlement.DateTime(d))
		if err != nil {
			return bankfile.Manifest{}, fmt.Errorf("list the files of cycle %s: %w", d, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return bankfile.Manifest{}, fmt.Errorf("list the files of cycle %s: %w", d, err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return bankfile.Manifest{}, fmt.Errorf("list the files of cycle %s: %w", d, err)
		}
	}
	var m bankfile.Manifest
	for _, id := range ids {
		r, err := s.File(ctx, id, d)
		if err != nil {
			return m, err
		}
		m.Files = append(m.Files, r.XML, r.CSV)
	}
	return m, nil
}

// WriteFile writes bank's file of cycle d in format f to w. The first time a bank fetches a
// format (fetch true) it gets the file as first written; every later time, a duplicate copy,
// marked so. The original is checked against its recorded checksum before a byte of it goes
// out: it is written to memory first (a file is bounded by bankfile's item bound). The fetch is
// recorded only once the file is made and checked, just before it goes out: a fetch that fails
// before (the database slow or gone, the request given up) leaves the original to the next.
func (s *Settlement) WriteFile(ctx context.Context, w io.Writer, bankID string, d settlement.Date, f bankfile.Format, fetch bool) (FileRecord, bool, error) {
	r, err := s.File(ctx, bankID, d)
	if err != nil {
		return r, false, err
	}
	h := r.Header
	want := r.XML
	if f == bankfile.FormatCSV {
		want = r.CSV
	}
	var buf bytes.Buffer
	got, err := writeFile(ctx, s.store.pool, &buf, h, f)
	if err != nil {
		return r, false, err
	}
	if got.SHA256 != want.SHA256 || got.Size != want.Size {
		return r, false, fmt.Errorf("%s file of %s for cycle %s: %w", f, bankID, d, ErrFileChanged)
	}
	dup := false
	if fetch {
		tag, err := s.store.pool.Exec(ctx, `INSERT INTO settlement_file_fetches (bank_id, cycle_date, format, fetched_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (bank_id, cycle_date, format) DO NOTHING`,
			bankID, settlement.DateTime(d), string(f), s.store.Now().UTC())
		if err != nil {
			return r, false, fmt.Errorf("record the fetch of %s's file: %w", bankID, err)
		}
		dup = tag.RowsAffected() == 0
	}
	if dup {
		h.Copy = true
		buf.Reset()
		if _, err := writeFile(ctx, s.store.pool, &buf, h, f); err != nil {
			return r, dup, err
		}
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return r, dup, fmt.Errorf("send the file of %s: %w", bankID, err)
	}
	return r, dup, nil
}

// Positions adds up cycle d's items per bank, streaming them.
func (s *Settlement) Positions(ctx context.Context, d settlement.Date) (*settlement.Positions, error) {
	rows, err := s.store.pool.Query(ctx, `SELECT `+itemColumns+` FROM settlement_items i WHERE i.cycle_date = $1`, settlement.DateTime(d))
	if err != nil {
		return nil, fmt.Errorf("read the items of cycle %s: %w", d, err)
	}
	defer rows.Close()
	p := &settlement.Positions{}
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		if err := p.Add(it); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the items of cycle %s: %w", d, err)
	}
	return p, nil
}

// AckResult is what an acknowledgement did.
type AckResult struct {
	Bank     string
	Cycle    settlement.Date
	Status   bankfile.Status
	Items    int64 // the file's items
	Rejected int64 // of them, rejected: their money returned to clearing, offered again next cycle
	Returned int64 // the money returned, fen (unsigned)
}

// maxReturnBatch bounds one batch of returns: the ledger's own bound.
const maxReturnBatch = ledger.MaxBatchTransfers

// Acknowledge records bank's acknowledgement of one of its files: every item the bank rejected has its settlement posting reversed, the money back in
// clearing, and is offered again at the next cycle's close; all in one transaction. The same
// verdicts again (however written, under whatever report id and time, listing accepted items or
// not) answer the first result with replayed true and do nothing; a report judging an item or
// the file otherwise fails with an *AckVerdictError wrapping ErrAckConflict, and changes nothing. A report naming a file or item the bank does not have fails with
// ErrAckInvalid.
func (s *Settlement) Acknowledge(ctx context.Context, bankID string, ack *bankfile.Ack) (AckResult, bool, error) {
	res := AckResult{Bank: bankID, Status: ack.Status}
	if ack.BankID != bankID {
		return res, false, fmt.Errorf("%w: the report is from bank %q", ErrAckInvalid, ack.BankID)
	}
	var day time.Time
	err := s.store.pool.QueryRow(ctx, `SELECT cycle_date FROM settlement_files WHERE message_id = $1 AND bank_id = $2`,
		ack.FileMessageID, bankID).Scan(&day)
	if errors.Is(err, pgx.ErrNoRows) {
		return res, false, fmt.Errorf("%w: no file of this bank has the message id", ErrAckInvalid)
	}
	if err != nil {
		return res, false, fmt.Errorf("look up the file acknowledged: %w", err)
	}
	res.Cycle = settlement.DateOf(day)
	// The report's canonical form identifies it: the same verdicts in XML or CSV are one report.
	var canonical bytes.Buffer
	if err := bankfile.WriteAckCSV(&canonical, ack); err != nil {
		return res, false, fmt.Errorf("%w: %w", ErrAckInvalid, err)
	}
	sum := sha256.Sum256(canonical.Bytes())
	bodyHash := hex.EncodeToString(sum[:])
	replayed := false
	err = s.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		replayed, res.Items, res.Rejected, res.Returned = false, 0, 0, 0
		var prior, priorStatus string
		err := tx.QueryRow(ctx, `SELECT body_sha256, status FROM settlement_acks WHERE bank_id = $1 AND cycle_date = $2`,
			bankID, day).Scan(&prior, &priorStatus)
		judged := false
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("look up earlier acknowledgements: %w", err)
		case prior == bodyHash:
			replayed = true
			return s.ackTotals(ctx, tx, bankID, day, &res)
		default:
			// Another report of a file judged: the same verdicts under another report id, time
			// or listing are the same report; another verdict is refused.
			judged = true
		}
		accepts := ack.Accepts()
		listed := make(map[string]bankfile.ItemStatus, len(ack.Items))
		for _, it := range ack.Items {
			listed[it.ItemID] = it
		}
		// reasonOf is a rejected item's reason: its own, or the report's for the whole file. The
		// bank's text is kept, and compared with a report sent again, with any personal number in
		// it withheld (a card number there refuses the report).
		reasonOf := func(id string) (code, reason string) {
			st := listed[id]
			if st.ReasonCode == "" {
				return ack.ReasonCode, events.RedactWords(ack.Reason)
			}
			return st.ReasonCode, events.RedactWords(st.Reason)
		}
		// The file's items, in id order: each listed item must be one of them.
		rows, err := tx.Query(ctx, `SELECT `+itemColumns+` FROM settlement_items i WHERE i.cycle_date = $1 AND i.bank_id = $2 ORDER BY i.item_id`,
			day, bankID)
		if err != nil {
			return fmt.Errorf("read the file's items: %w", err)
		}
		var rejected []settlement.Item
		seen := 0
		for rows.Next() {
			it, err := scanItem(rows)
			if err != nil {
				rows.Close()
				return err
			}
			res.Items++
			id := settlement.FileItemID(it.ID)
			if _, ok := listed[id]; ok {
				seen++
			}
			if !accepts(id) {
				rejected = append(rejected, it)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read the file's items: %w", err)
		}
		if seen != len(listed) {
			return fmt.Errorf("%w: it names %d items that are not in the file", ErrAckInvalid, len(listed)-seen)
		}
		if judged {
			if err := sameVerdicts(ctx, tx, bankID, day, priorStatus, ack, rejected, reasonOf); err != nil {
				return err
			}
			replayed = true
			return s.ackTotals(ctx, tx, bankID, day, &res)
		}
		now := s.store.Now().UTC()
		if _, err := tx.Exec(ctx, `INSERT INTO settlement_acks (bank_id, cycle_date, message_id, status, body_sha256, received_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, bankID, day, ack.FileMessageID, ackStatus(ack.Status), bodyHash, now); err != nil {
			return fmt.Errorf("record the acknowledgement: %w", err)
		}
		// Returns: each rejected item's posting reversed, in batches within the ledger's bound.
		for start := 0; start < len(rejected); start += maxReturnBatch {
			chunk := rejected[start:min(start+maxReturnBatch, len(rejected))]
			batch := make([]ledger.Transfer, len(chunk))
			for i, it := range chunk {
				p, err := settlement.Posting(it)
				if err != nil {
					return err
				}
				batch[i] = settlement.Return(it, p)
			}
			out, err := tx.Apply(ctx, batch)
			if err != nil {
				return err
			}
			for i, r := range out.Results {
				if r != ledger.Created {
					return fmt.Errorf("return item %s: %s", chunk[i].ID, r)
				}
			}
			ids, banks, days, codes, reasons, returns := make([][16]byte, len(chunk)), make([]string, len(chunk)),
				make([]time.Time, len(chunk)), make([]string, len(chunk)), make([]string, len(chunk)), make([][16]byte, len(chunk))
			for i, it := range chunk {
				code, reason := reasonOf(settlement.FileItemID(it.ID))
				ids[i], banks[i], days[i], codes[i], reasons[i], returns[i] = it.ID, bankID, day, code, reason, batch[i].ID
				res.Returned += batch[i].Amount
			}
			if _, err := tx.Exec(ctx, `INSERT INTO settlement_item_results (item_id, bank_id, cycle_date, accepted, reason_code, reason, return_id, decided_at)
				SELECT id, bank, day, false, code, reason, ret, $7
				FROM unnest($1::UUID[], $2::TEXT[], $3::DATE[], $4::TEXT[], $5::TEXT[], $6::UUID[]) AS r(id, bank, day, code, reason, ret)`,
				ids, banks, days, codes, reasons, returns, now); err != nil {
				return fmt.Errorf("record rejected items: %w", err)
			}
			res.Rejected += int64(len(chunk))
		}
		return nil
	})
	if err != nil {
		return res, false, err
	}
	return res, replayed, nil
}

// AckVerdictError is returned, wrapping ErrAckConflict, for a report on a file already
// acknowledged that judges an item, or the file, otherwise than the report recorded. It names
// the item by its id in the file, never repeating a reason's text.
type AckVerdictError struct {
	ItemID string // the first item judged otherwise; empty when only the file's status differs
	Was    string // the verdict recorded: "accepted", "rejected (AC04)", or the file's status
	Now    string // the report's verdict
}

func (e *AckVerdictError) Error() string {
	if e.ItemID == "" {
		return fmt.Sprintf("the file's status was %s, the report says %s", e.Was, e.Now)
	}
	return fmt.Sprintf("item %s was %s before, the report says %s", e.ItemID, e.Was, e.Now)
}

func (e *AckVerdictError) Unwrap() error { return ErrAckConflict }

// sameVerdicts checks a report on a file already acknowledged against the verdicts recorded: the
// file's status, and each item rejected, with its reason, or accepted. rejected are the file's
// items the report rejects, in id order; reasonOf gives each one's reason.
func sameVerdicts(ctx context.Context, tx *Tx, bankID string, day time.Time, priorStatus string, ack *bankfile.Ack,
	rejected []settlement.Item, reasonOf func(id string) (code, reason string)) error {
	type verdict struct{ code, reason string }
	was := map[string]verdict{}
	rows, err := tx.Query(ctx, `SELECT item_id, reason_code, reason FROM settlement_item_results
		WHERE bank_id = $1 AND cycle_date = $2 AND NOT accepted`, bankID, day)
	if err != nil {
		return fmt.Errorf("read the verdicts recorded: %w", err)
	}
	for rows.Next() {
		var (
			id [16]byte
			v  verdict
		)
		if err := rows.Scan(&id, &v.code, &v.reason); err != nil {
			rows.Close()
			return fmt.Errorf("read the verdicts recorded: %w", err)
		}
		was[settlement.FileItemID(id)] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the verdicts recorded: %w", err)
	}
	for _, it := range rejected {
		id := settlement.FileItemID(it.ID)
		code, reason := reasonOf(id)
		v, ok := was[id]
		switch {
		case !ok:
			return &AckVerdictError{ItemID: id, Was: "accepted", Now: "rejected (" + code + ")"}
		case v.code != code || v.reason != reason:
			return &AckVerdictError{ItemID: id, Was: "rejected (" + v.code + ")", Now: "rejected (" + code + ") with another reason"}
		}
		delete(was, id)
	}
	for id, v := range was {
		return &AckVerdictError{ItemID: id, Was: "rejected (" + v.code + ")", Now: "accepted"}
	}
	if now := ackStatus(ack.Status); now != priorStatus {
		return &AckVerdictError{Was: priorStatus, Now: now}
	}
	return nil
}

func (s *Settlement) ackTotals(ctx context.Context, tx *Tx, bankID string, day time.Time, res *AckResult) error {
	var status string
	if err := tx.QueryRow(ctx, `SELECT a.status,
			(SELECT count(*) FROM settlement_items i WHERE i.cycle_date = a.cycle_date AND i.bank_id = a.bank_id),
			(SELECT count(*) FROM settlement_item_results r WHERE r.cycle_date = a.cycle_date AND r.bank_id = a.bank_id AND NOT r.accepted),
			(SELECT coalesce(sum(abs(i.amount)), 0)::BIGINT FROM settlement_item_results r JOIN settlement_items i ON i.item_id = r.item_id
				WHERE r.cycle_date = a.cycle_date AND r.bank_id = a.bank_id AND NOT r.accepted)
		FROM settlement_acks a WHERE a.bank_id = $1 AND a.cycle_date = $2`, bankID, day).
		Scan(&status, &res.Items, &res.Rejected, &res.Returned); err != nil {
		return fmt.Errorf("read the acknowledgement: %w", err)
	}
	res.Status = map[string]bankfile.Status{"accepted": bankfile.StatusAccepted, "rejected": bankfile.StatusRejected,
		"partial": bankfile.StatusPartial}[status]
	return nil
}

func ackStatus(s bankfile.Status) string {
	switch s {
	case bankfile.StatusAccepted:
		return "accepted"
	case bankfile.StatusRejected:
		return "rejected"
	}
	return "partial"
}

// FileAck is what a bank said of a file: nothing yet (Status empty), or its report's status
// and how many items it rejected.
type FileAck struct {
	Status     string
	ReceivedAt time.Time
	Rejected   int64
}

// FileAcks returns the acknowledgements of cycle d's files, by bank.
func (s *Settlement) FileAcks(ctx context.Context, d settlement.Date) (map[string]FileAck, error) {
	rows, err := s.store.pool.Query(ctx, `SELECT a.bank_id, a.status, a.received_at,
			(SELECT count(*) FROM settlement_item_results r WHERE r.cycle_date = a.cycle_date AND r.bank_id = a.bank_id AND NOT r.accepted)
		FROM settlement_acks a WHERE a.cycle_date = $1`, settlement.DateTime(d))
	if err != nil {
		return nil, fmt.Errorf("read the acknowledgements of cycle %s: %w", d, err)
	}
	defer rows.Close()
	out := map[string]FileAck{}
	for rows.Next() {
		var (
			bank string
			a    FileAck
		)
		if err := rows.Scan(&bank, &a.Status, &a.ReceivedAt, &a.Rejected); err != nil {
			return nil, fmt.Errorf("read the acknowledgements of cycle %s: %w", d, err)
		}
		out[bank] = a
	}
	return out, rows.Err()
}

// Files returns the records of cycle d's files, in bank order.
func (s *Settlement) Files(ctx context.Context, d settlement.Date) ([]FileRecord, error) {
	m, err := s.Manifest(ctx, "", d)
	if err != nil {
		return nil, err
	}
	var out []FileRecord
	for i := 0; i+1 < len(m.Files); i += 2 {
		r, err := s.File(ctx, m.Files[i].BankID, d)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b FileRecord) int {
		switch {
		case a.Header.BankID < b.Header.BankID:
			return -1
		case a.Header.BankID > b.Header.BankID:
			return 1
		}
		return 0
	})
	return out, nil
}

// CreateBankKey records an API key of a registered bank by its SHA-256.
func (st *Store) CreateBankKey(ctx context.Context, bankID string, keyHash [32]byte) error {
	return st.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		var found bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM parties WHERE kind = 'bank' AND party_id = $1)`, bankID).Scan(&found); err != nil {
			return fmt.Errorf("look up bank: %w", err)
		}
		if !found {
			return fmt.Errorf("bank %q: %w", bankID, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO bank_keys (key_hash, bank_id, created_at) VALUES ($1, $2, $3)`,
			keyHash[:], bankID, st.Now().UTC()); err != nil {
			return fmt.Errorf("record bank key: %w", err)
		}
		return nil
	})
}

// RevokeBankKeys deletes every API key of a registered bank and returns how many it had, or
// ErrNotFound for a bank that is not registered. BankByKey reads the keys on every request, so a
// revoked key stops working at once in every process.
func (st *Store) RevokeBankKeys(ctx context.Context, bankID string) (int64, error) {
	var n int64
	err := st.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		var found bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM parties WHERE kind = 'bank' AND party_id = $1)`, bankID).Scan(&found); err != nil {
			return fmt.Errorf("look up bank: %w", err)
		}
		if !found {
			return fmt.Errorf("bank %q: %w", bankID, ErrNotFound)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM bank_keys WHERE bank_id = $1`, bankID)
		if err != nil {
			return fmt.Errorf("revoke bank keys: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return n, err
}

// BankByKey returns the bank whose API key has the SHA-256 keyHash, or ErrNotFound.
func (st *Store) BankByKey(ctx context.Context, keyHash [32]byte) (string, error) {
	var id string
	err := st.pool.QueryRow(ctx, `SELECT bank_id FROM bank_keys WHERE key_hash = $1`, keyHash[:]).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("bank key: %w", ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("look up bank key: %w", err)
	}
	return id, nil
}
