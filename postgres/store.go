// Package postgres stores the ledger in PostgreSQL (and, with the same SQL, CockroachDB) through
// pgx. A batch of transfers is one database transaction: prefetch what the batch needs, apply it
// in memory with the ledger package, write the transfers, one balance row per touched account and
// the caller's cursor, commit. Transactions are retried whole, a bounded number of times, with
// cockroach-go's crdb.ExecuteCtx.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/migrations"
	"github.com/joinincard/engine/transit"
)

// DefaultURL is the local PostgreSQL of a development machine or a single-machine pilot.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/joinin?sslmode=disable"

// Store is the ledger's PostgreSQL store. It is safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	cache *accountCache
	cards *cardCache
	clock dbClock
	// lastLead and maxLead are how far batch times led the writer's clock, nanoseconds.
	lastLead, maxLead atomic.Int64
	// txStats counts write transactions and their retries (TxStats).
	txStats txCounters
	// kafkaTapLookups counts the consumer's next transactions that look their taps up before
	// deciding them (see decideTransitTaps): set when a transaction found taps seen before.
	kafkaTapLookups atomic.Int32
	// leases hands out balance shards to the transactions that advance no cursor.
	leases *shardLeases
	// cursorsLeft is where this process's last commit of each cursor left it (cursorsKnown).
	cursorsMu   sync.Mutex
	cursorsLeft map[string]int64
	// Now is the store's clock: transfers are stamped, holds expire and the domain decides by it.
	// It is the database server's clock as this process measured it (SyncClock), so that every
	// process writing to one database keeps one time. Tests replace it.
	Now func() time.Time
	// Tokenizer holds the token key, which keys the hash kept of a dead letter's original bytes
	// when they had to be redacted (events.Tokenizer.Fingerprint). Nil keeps no such hash: the
	// dead letter is redacted all the same.
	Tokenizer *events.Tokenizer
	// TransitFares, when set, gives the fare tables in force, and the consumer decides the
	// transit.tap events of a batch in the batch's own transaction, as an uploaded batch is
	// decided. Nil leaves them in the taps inbox for DrainTransitTaps.
	TransitFares func() *transit.Tables
	// tariffs is what purchases price by once LoadTariffs has loaded it; nil: the fee plans
	// built into the binary.
	tariffs atomic.Pointer[Tariffs]
	// postgreSQL says the server is PostgreSQL, not CockroachDB: the request committers then
	// ask it for plans made for each execution's keys (customPlans).
	postgreSQL bool
	// beforeSettledMark, when set, is called once a travel day's cards are charged, before the
	// day is marked settled (tests).
	beforeSettledMark func(group string, d transit.Day)
}

// defaultPoolConns is the connection pool's size when the database URL does not set
// pool_max_conns. The consumer's committers (two), the authorization committer, the transfers
// API's commit workers (three), the expiry sweep, settlement, verification and the HTTP reads
// each hold a connection while they work; pgx's own default, the larger of 4 and the cores,
// would make them wait for one another on a two-core machine. Connections open on demand, so an
// engine that needs fewer holds fewer, and eight engines at most stay under PostgreSQL's default
// max_connections (100).
const defaultPoolConns = 12

// compressWAL has a PostgreSQL connection that may (a superuser's) compress the full page images
// it writes to the WAL with lz4, when neither the server's configuration nor the connection's
// options say otherwise. The engine's
// writes land on random leaves of large indexes (balance versions by account, decisions by event
// id), and after each checkpoint the first change to a leaf writes the whole 8 kB page; those
// pages compress to about half. Less WAL also spaces out the checkpoints that WAL volume
// triggers, so fewer pages are written whole at all. With 3,000,000 earlier events in the
// tables, 500,000 more were consumed 33-56% faster with it, in runs alternated with it off.
//
// It is a setting of the connection only. It is not tried on CockroachDB (whose startup
// reports crdb_version), nor for a role that is not a superuser (is_superuser), and a server
// that refuses it (built without lz4) is left as it is: the engine is correct either way.
func compressWAL(ctx context.Context, c *pgx.Conn) {
	pc := c.PgConn()
	if pc.ParameterStatus("crdb_version") != "" || pc.ParameterStatus("is_superuser") != "on" {
		return
	}
	// A refusal leaves the session as it was: this is not inside a transaction.
	// Only where nobody chose: a setting from the server's configuration or the connection's
	// options (options=-c wal_compression=off in the URL) is kept.
	_, _ = c.Exec(ctx, `SELECT set_config('wal_compression', 'lz4', false)
		FROM pg_settings WHERE name = 'wal_compression' AND setting = 'off' AND source = 'default'`)
}

// Open connects to the database at url. It does not migrate: call Migrate.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = max(cfg.MaxConns, defaultPoolConns)
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		registerUUIDs(c.TypeMap())
		compressWAL(ctx, c)
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", cfg.ConnConfig.Database, err)
	}
	s := &Store{pool: pool, cache: newAccountCache(), cards: newCardCache(), leases: newShardLeases()}
	s.Now = s.clock.now
	if _, err := s.SyncClock(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if s.postgreSQL, err = s.IsPostgreSQL(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the store's connections.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Pool exposes the connection pool to sibling adapters that keep their own tables in the same
// database and must write them in the ledger's transactions.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Migrate applies the embedded migrations that the database has not seen, each in its own
// transaction, in file-name order, then, on PostgreSQL only, the queue tables' storage
// parameters. Two processes migrating at once are safe: the version row is written first, so the
// second one waits for the first and then skips the migration.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    TEXT        PRIMARY KEY,
		applied_at TIMESTAMPTZ NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		body, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			return fmt.Errorf("read migration %s: %w", name, err)
		}
		version := strings.TrimSuffix(name, ".sql")
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)
				ON CONFLICT (version) DO NOTHING`, version, s.Now())
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			// No arguments: pgx sends the file with the simple protocol, several statements at once.
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", name, err)
		}
	}
	// What a migration cannot say in SQL both databases accept (queues.go).
	return s.tuneQueues(ctx)
}

// AccountSpec is an account to open: its ledger definition and a name people read in reports.
type AccountSpec struct {
	ledger.Account
	Name string
}

// ErrAccountConflict is returned when an account id is reused with a different definition.
var ErrAccountConflict = errors.New("account exists with a different definition")

// AccountConflictError names the account whose id was reused with a different definition. It
// wraps ErrAccountConflict.
type AccountConflictError struct{ ID ledger.ID }

func (e *AccountConflictError) Error() string {
	return fmt.Sprintf("account %s: %v", e.ID, ErrAccountConflict)
}
func (e *AccountConflictError) Unwrap() error { return ErrAccountConflict }

// CreateAccounts opens accounts with zero balances, all or none. Opening an account again with
// the same definition is a no-op; with a different one it fails with ErrAccountConflict.
func (s *Store) CreateAccounts(ctx context.Context, specs []AccountSpec) error {
	_, err := s.OpenAccounts(ctx, specs)
	return err
}

// OpenAccounts opens accounts as CreateAccounts does and reports, for each spec, whether this call
// opened it (true) or found it open with the same definition (false). A conflict fails with an
// *AccountConflictError naming the account, and opens none.
func (s *Store) OpenAccounts(ctx context.Context, specs []AccountSpec) ([]bool, error) {
	var opened []bool
	err := s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		fresh, err := tx.createAccounts(ctx, specs)
		if err != nil {
			return err
		}
		opened = make([]bool, len(specs))
		for i := range specs {
			opened[i] = fresh[specs[i].ID]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return opened, nil
}

// CreateAccounts opens accounts within the transaction (see Store.CreateAccounts), in one
// statement for the accounts and one for their opening balances, however many there are.
func (t *Tx) CreateAccounts(ctx context.Context, specs []AccountSpec) error {
	_, err := t.createAccounts(ctx, specs)
	return err
}

// createAccounts is CreateAccounts, returning the accounts it opened: those not open before.
func (t *Tx) createAccounts(ctx context.Context, specs []AccountSpec) (map[ledger.ID]bool, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	n := len(specs)
	var (
		ids               = make([][16]byte, n)
		currencies, kinds = make([]string, n), make([]string, n)
		names             = make([]string, n)
		flags             = make([]int32, n)
		limits            = make([]int64, n)
		byID              = make(map[ledger.ID]*AccountSpec, n)
		now               = t.store.Now().UTC().Truncate(time.Microsecond)
		fresh             []ledger.ID
	)
	for i := range specs {
		a := &specs[i]
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("account %d: %w", i, err)
		}
		if prior, ok := byID[a.ID]; ok && !sameSpec(prior, a) {
			// Twice in one call with two definitions: the insert would keep one of them.
			return nil, &AccountConflictError{ID: a.ID}
		}
		ids[i], currencies[i], kinds[i], names[i] = a.ID, string(a.Currency), a.Kind.String(), a.Name
		flags[i], limits[i] = int32(a.Flags), a.Limit
		byID[a.ID] = a
	}
	rows, err := t.Query(ctx, `INSERT INTO accounts (id, currency, kind, flags, balance_limit, name, created_at)
		SELECT id, currency, kind, flags, balance_limit, name, $7
		FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::INT[], $5::BIGINT[], $6::TEXT[])
			AS a(id, currency, kind, flags, balance_limit, name)
		ON CONFLICT (id) DO NOTHING RETURNING id`, ids, currencies, kinds, flags, limits, names, now)
	if err != nil {
		return nil, fmt.Errorf("insert accounts: %w", err)
	}
	for rows.Next() {
		var id [16]byte
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("insert accounts: %w", err)
		}
		fresh = append(fresh, ledger.ID(id))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert accounts: %w", err)
	}
	if len(fresh) < len(byID) {
		// Some existed: they must be the same accounts.
		isFresh := make(map[ledger.ID]bool, len(fresh))
		for _, id := range fresh {
			isFresh[id] = true
		}
		for id, a := range byID {
			if !isFresh[id] {
				if err := sameAccount(ctx, t.Tx, a); err != nil {
					return nil, err
				}
			}
		}
	}
	slices.SortFunc(fresh, compareID)
	_, err = t.CopyFrom(ctx, pgx.Identifier{"account_balances"},
		[]string{"account_id", "version", "ts", "debits_pending", "debits_posted", "credits_pending", "credits_posted", "transfer_ids"},
		pgx.CopyFromSlice(len(fresh), func(i int) ([]any, error) {
			return []any{[16]byte(fresh[i]), int64(1), now, int64(0), int64(0), int64(0), int64(0), [][16]byte{}}, nil
		}))
	if err != nil {
		return nil, fmt.Errorf("insert opening balances: %w", err)
	}
	// A new account's balance is known without reading it back: zero, version 1.
	for _, id := range fresh {
		a := byID[id].Account
		a.Balance = ledger.Balance{}
		t.written[balanceKey{id, homeShard}] = cachedAccount{account: a, shard: homeShard, version: 1, ts: now.UnixMicro()}
	}
	opened := make(map[ledger.ID]bool, len(fresh))
	for _, id := range fresh {
		opened[id] = true
	}
	return opened, nil
}

func sameSpec(a, b *AccountSpec) bool {
	return a.Currency == b.Currency && a.Kind == b.Kind && a.Flags == b.Flags && a.Limit == b.Limit && a.Name == b.Name
}

func sameAccount(ctx context.Context, tx pgx.Tx, a *AccountSpec) error {
	var (
		currency, kind, name string
		flags                int32
		limit                int64
	)
	err := tx.QueryRow(ctx, `SELECT currency, kind, flags, balance_limit, name FROM accounts WHERE id = $1`, [16]byte(a.ID)).
		Scan(&currency, &kind, &flags, &limit, &name)
	if err != nil {
		return fmt.Errorf("read account %s: %w", a.ID, err)
	}
	if currency != string(a.Currency) || kind != a.Kind.String() || flags != int32(a.Flags) || limit != a.Limit || name != a.Name {
		return &AccountConflictError{ID: a.ID}
	}
	return nil
}

// pgCode returns the SQLSTATE of a database error, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// EnsureDatabase creates the database named in url if the server does not have it yet, so that a
// new machine needs nothing done by hand. It connects to the server's postgres database to do so.
func EnsureDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	if pgCode(err) != "3D000" { // invalid_catalog_name: the database does not exist
		return fmt.Errorf("connect to database %s: %w", cfg.Database, err)
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to server to create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if err != nil && pgCode(err) != "42P04" { // duplicate_database: created meanwhile
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
