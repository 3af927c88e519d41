package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/tariffs"
	"github.com/joinincard/engine/transit"
)

// ErrStaleTariffs: a pricing transaction found that a version of the tariffs it prices by was
// uploaded since they were built. Nothing was written; refresh (Tariffs.Refresh) and try again.
var ErrStaleTariffs = errors.New("a tariff version was uploaded since the tariffs were loaded")

// Tariffs is what the engine prices by: the fare tables, fee plans and medical policies it
// started with, and the versions uploaded since, which it keeps in the database with who
// uploaded each and when. It rebuilds its sets on each upload and, when another process uploaded
// one, on Refresh. It is safe for concurrent use.
type Tariffs struct {
	store *Store
	base  *tariffs.Base
	set   atomic.Pointer[tariffs.Set]
	// seen is the number of versions of each kind the set was built from.
	seen atomic.Pointer[map[tariffs.Kind]int]
	mu   sync.Mutex // one reload at a time
}

// LoadTariffs builds what the store prices by from the files the engine starts with and every
// version uploaded, and makes the store's purchases price by it. A file or a version that does not
// check stops the engine at start rather than price anything by what it misread.
func (s *Store) LoadTariffs(ctx context.Context, files tariffs.Files) (*Tariffs, error) {
	base, err := tariffs.NewBase(files)
	if err != nil {
		return nil, err
	}
	t := &Tariffs{store: s, base: base}
	if err := t.reload(ctx); err != nil {
		return nil, err
	}
	s.tariffs.Store(t)
	return t, nil
}

// Set is the set in force now.
func (t *Tariffs) Set() *tariffs.Set { return t.set.Load() }

// Fares are the fare tables in force now.
func (t *Tariffs) Fares() *transit.Tables { return t.set.Load().Fares }

// FeePlans are the fee plans in force now.
func (t *Tariffs) FeePlans() *fees.Catalog { return t.set.Load().FeePlans }

// MedicalPolicies are the medical policies in force now.
func (t *Tariffs) MedicalPolicies() *medical.Policies { return t.set.Load().Medical }

// MedicalCatalogues are the medical catalogues in force now.
func (t *Tariffs) MedicalCatalogues() *medical.Catalogues { return t.set.Load().Catalogues }

// Refresh rebuilds the sets when versions were uploaded since they were built (by another
// process: this one rebuilds on its own uploads).
func (t *Tariffs) Refresh(ctx context.Context) error {
	counts, err := tariffCounts(ctx, t.store.pool)
	if err != nil {
		return err
	}
	if seen := t.seen.Load(); seen != nil && sameCounts(counts, *seen) {
		return nil
	}
	return t.reload(ctx)
}

func sameCounts(a, b map[tariffs.Kind]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func tariffCounts(ctx context.Context, q querier) (map[tariffs.Kind]int, error) {
	rows, err := q.Query(ctx, `SELECT kind, versions FROM tariff_kinds`)
	if err != nil {
		return nil, fmt.Errorf("read tariff versions: %w", err)
	}
	defer rows.Close()
	out := map[tariffs.Kind]int{}
	for rows.Next() {
		var (
			k string
			n int
		)
		if err := rows.Scan(&k, &n); err != nil {
			return nil, fmt.Errorf("read tariff versions: %w", err)
		}
		out[tariffs.Kind(k)] = n
	}
	return out, rows.Err()
}

// reload reads every uploaded version, with the counts, in one snapshot, and rebuilds the sets.
func (t *Tariffs) reload(ctx context.Context) error {
	tx, err := t.store.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("read tariff versions: %w", err)
	}
	// A read-only transaction: the rollback only ends the snapshot.
	defer func() { _ = tx.Rollback(ctx) }()
	return t.reloadFrom(ctx, tx)
}

// reloadFrom rebuilds the sets from the versions and counts q reads, which must be one state of
// them: a snapshot, or a transaction holding a kind's row FOR SHARE, which no upload (of any
// kind: an upload holds every kind's row) passes. A transaction that finds itself stale reloads
// through itself, taking no second connection from the pool while it holds one.
func (t *Tariffs) reloadFrom(ctx context.Context, q querier) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	counts, err := tariffCounts(ctx, q)
	if err != nil {
		return err
	}
	versions, err := readTariffVersions(ctx, q, "")
	if err != nil {
		return err
	}
	set, err := t.base.Build(versions)
	if err != nil {
		return fmt.Errorf("tariffs in the database: %w", err)
	}
	t.set.Store(set)
	t.seen.Store(&counts)
	return nil
}

const tariffVersionColumns = `kind, seq, tariff_id, effective_from, body, body_sha256, uploaded_by, uploaded_at, repriced`

// readTariffVersions reads the uploaded versions of kind ("" for every kind), by kind and seq.
func readTariffVersions(ctx context.Context, q querier, kind tariffs.Kind) ([]tariffs.Version, error) {
	rows, err := q.Query(ctx, `SELECT `+tariffVersionColumns+` FROM tariff_versions WHERE $1 = '' OR kind = $1 ORDER BY kind, seq`, string(kind))
	if err != nil {
		return nil, fmt.Errorf("read tariff versions: %w", err)
	}
	defer rows.Close()
	var out []tariffs.Version
	for rows.Next() {
		var (
			v    tariffs.Version
			k    string
			from time.Time
			sum  []byte
		)
		if err := rows.Scan(&k, &v.Seq, &v.ID, &from, &v.Body, &sum, &v.UploadedBy, &v.UploadedAt, &v.Repriced); err != nil {
			return nil, fmt.Errorf("read tariff versions: %w", err)
		}
		v.Kind, v.Source, v.UploadedAt = tariffs.Kind(k), tariffs.SourceUpload, v.UploadedAt.UTC()
		v.From = events.Date{Year: from.Year(), Month: from.Month(), Day: from.Day()}
		copy(v.SHA256[:], sum)
		out = append(out, v)
	}
	return out, rows.Err()
}

// Versions lists the versions of kind, optionally of one id: the files the engine started with,
// then the uploaded ones in the order they were uploaded.
func (t *Tariffs) Versions(ctx context.Context, kind tariffs.Kind, id string) ([]tariffs.Version, error) {
	var out []tariffs.Version
	for _, v := range t.base.Files(kind) {
		if id == "" || v.ID == id {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b tariffs.Version) int { return cmpString(a.File, b.File) })
	uploaded, err := readTariffVersions(ctx, t.store.pool, kind)
	if err != nil {
		return nil, err
	}
	var jobs map[int]*tariffs.Repricing
	if kind == tariffs.FeePlans {
		if jobs, err = readFeeRepricings(ctx, t.store.pool); err != nil {
			return nil, err
		}
	}
	for _, v := range uploaded {
		if id == "" || v.ID == id {
			v.Repricing = jobs[v.Seq]
			out = append(out, v)
		}
	}
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Upload adds a version, or several fare tables from one day, decided by tariffs.Base.Accept
// against every version before it, with who uploads it and when. A fare table that takes effect
// before today (the admin asked to re-price) marks every card's travel days since, at the
// operator's group, for re-pricing: the days are priced again by it and the differences posted
// as adjustments, as late taps do. A fee plan that takes effect today or before (the admin asked
// to re-price) queues, in the same transaction, the re-pricing of the purchases since
// (RepriceFees). The same files with the same first day again change nothing and return the
// versions they added (replayed). A refused upload writes nothing; its error is a
// *tariffs.Refusal.
func (t *Tariffs) Upload(ctx context.Context, up tariffs.Upload) ([]tariffs.Version, bool, error) {
	var (
		vs       []tariffs.Version
		replayed bool
	)
	err := t.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		vs, replayed = nil, false
		// Every kind's row, in key order: uploads are rare, and one at a time checks each
		// against all the versions before it.
		rows, err := tx.Query(ctx, `SELECT kind, versions FROM tariff_kinds ORDER BY kind FOR UPDATE`)
		if err != nil {
			return fmt.Errorf("lock tariffs: %w", err)
		}
		counts := map[tariffs.Kind]int{}
		for rows.Next() {
			var (
				k string
				n int
			)
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return fmt.Errorf("lock tariffs: %w", err)
			}
			counts[tariffs.Kind(k)] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("lock tariffs: %w", err)
		}
		before, err := readTariffVersions(ctx, tx, "")
		if err != nil {
			return err
		}
		if prior, ok := uploadedBefore(before, up); ok {
			vs, replayed = prior, true
			return nil
		}
		now := t.store.Now().UTC().Truncate(time.Microsecond)
		y, m, d := now.In(cards.Shanghai).Date()
		accepted, set, err := t.base.Accept(before, up, events.Date{Year: y, Month: m, Day: d}, counts[up.Kind]+1, now)
		if err != nil {
			return err
		}
		vs = accepted
		marked := map[string]bool{}
		for _, v := range vs {
			if _, err := tx.Exec(ctx, `INSERT INTO tariff_versions (`+tariffVersionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				string(v.Kind), v.Seq, v.ID, time.Date(v.From.Year, v.From.Month, v.From.Day, 0, 0, 0, 0, time.UTC), v.Body, v.SHA256[:],
				v.UploadedBy, v.UploadedAt, v.Repriced); err != nil {
				return fmt.Errorf("insert tariff version: %w", err)
			}
			if v.Kind == tariffs.FeePlans && v.Repriced {
				if err := tx.insertFeeRepriceJob(ctx, v.Seq, v.ID, v.From, now); err != nil {
					return err
				}
			}
			if v.Kind == tariffs.Fares && v.Repriced {
				op, _ := set.Fares.Operator(v.ID) // the set was built with it
				if g := op.Group(); !marked[g.Key] {
					marked[g.Key] = true
					if err := tx.markRepriced(ctx, g, tariffs.FareDays(v), now); err != nil {
						return err
					}
				}
			}
		}
		last := vs[len(vs)-1].Seq
		if _, err := tx.Exec(ctx, `UPDATE tariff_kinds SET versions = $2, updated_at = $3 WHERE kind = $1`, string(up.Kind), last, now); err != nil {
			return fmt.Errorf("count tariff versions: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if err := t.reload(ctx); err != nil {
		return vs, replayed, err
	}
	return vs, replayed, nil
}

// uploadedBefore returns the versions an upload added before: every one of its files uploaded before
// with its first day.
func uploadedBefore(before []tariffs.Version, up tariffs.Upload) ([]tariffs.Version, bool) {
	files, err := up.Files()
	if err != nil {
		return nil, false
	}
	var out []tariffs.Version
	for _, f := range files {
		sum := sha256.Sum256(f)
		found := false
		for _, b := range before {
			if b.Kind == up.Kind && b.From == up.From && bytes.Equal(b.SHA256[:], sum[:]) {
				out, found = append(out, b), true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return out, true
}

// markRepriced marks every card's travel days in group g from from through the group's last
// closed day for re-pricing: each card that tapped at the group's operators on such a day.
func (t *Tx) markRepriced(ctx context.Context, g *transit.Group, from transit.Day, now time.Time) error {
	_, err := t.Exec(ctx, `INSERT INTO transit_reprice (card_token, group_key, travel_day, marked_at)
		SELECT DISTINCT tp.card_token, $1, tp.travel_day, $4::TIMESTAMPTZ FROM transit_taps tp
		WHERE tp.operator_id = ANY($2) AND tp.travel_day >= $3
			AND tp.travel_day <= (SELECT closed_through FROM transit_groups WHERE group_key = $1)
		ON CONFLICT DO NOTHING`, g.Key, g.Operators, from.Date(), now)
	if err != nil {
		return fmt.Errorf("mark days to re-price: %w", err)
	}
	return nil
}

// checkFares holds the fare tables' row FOR SHARE for the rest of the transaction, and fails with
// ErrStaleTariffs when a fare table was uploaded that ts does not have: a transaction that prices
// travel days never prices them by tables older than an upload that committed before it, nor
// commits while one is being checked.
func (t *Tx) checkFares(ctx context.Context, ts *transit.Tables) error {
	var n int
	err := t.QueryRow(ctx, `SELECT versions FROM tariff_kinds WHERE kind = 'fares' FOR SHARE`).Scan(&n)
	if err != nil {
		return fmt.Errorf("read fare table versions: %w", err)
	}
	if n > ts.Seq() {
		return fmt.Errorf("fare tables have %d versions uploaded, these %d: %w", n, ts.Seq(), ErrStaleTariffs)
	}
	return nil
}

// feePlans returns the fee plans the store prices purchases by: the loaded tariffs', or the ones
// built into the binary.
func (s *Store) feePlans() (*fees.Catalog, error) {
	if t := s.tariffs.Load(); t != nil {
		return t.FeePlans(), nil
	}
	return feeCatalog()
}
