package migrations_test

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/joinincard/engine/migrations"
)

// refused lists what PostgreSQL accepts and CockroachDB does not (or does differently), which the
// schema must not use: the engine runs on both with one set of migrations.
var refused = []struct {
	pattern, why string
}{
	{`\b(big|small)?serial\b`, "sequences behind a column: keys are explicit (UUIDv7, derived ids)"},
	{`\bcreate\s+sequence\b|\bnextval\s*\(`, "sequences: a hot spot on a distributed database"},
	{`\bpg_advisory\w*`, "advisory locks"},
	{`\blisten\b|\bnotify\b`, "LISTEN/NOTIFY"},
	{`\bcreate\s+extension\b`, "extensions"},
	{`\busing\s+(brin|gist|spgist|hash)\b`, "index methods CockroachDB lacks"},
	{`\bexclude\s+using\b`, "exclusion constraints"},
	{`\binherits\s*\(`, "table inheritance"},
	{`\bpartition\s+of\b|\bpartition\s+by\b`, "declarative partitioning: the two databases spell it differently"},
	{`\bdeferrable\b|\binitially\s+deferred\b`, "deferred constraints"},
	{`\bcreate\s+(unlogged|temp|temporary)\s+table\b`, "unlogged or temporary tables"},
	{`\btablespace\b`, "tablespaces"},
	// CockroachDB accepts autovacuum_enabled and fillfactor, ignoring them, and refuses the rest:
	// the queue tables' vacuum settings are applied from Go, on PostgreSQL only (postgres/queues.go).
	{`\b(with|set)\s*\(\s*(fillfactor|autovacuum_\w+|toast\.\w+)`, "PostgreSQL storage parameters"},
	{`\bvacuum\b|\bcluster\b`, "maintenance commands"},
	{`\bcreate\s+rule\b`, "rules"},
	{`::\s*regclass\b|\bpg_catalog\.`, "PostgreSQL's catalogs"},
	{`\bon\s+commit\s+(drop|delete)\b`, "temporary-table commit actions"},
	{`\bxmin\b|\bctid\b`, "PostgreSQL's system columns"},
}

// comments are SQL comments: words in them are prose, not features.
var comments = regexp.MustCompile(`--[^\n]*`)

// The schema keeps to what PostgreSQL and CockroachDB both accept: no migration uses a feature on
// the refused list.
func TestMigrationsUseOnlyCommonSQL(t *testing.T) {
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v %v", files, err)
	}
	for _, name := range files {
		raw, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		sql := strings.ToLower(comments.ReplaceAllString(string(raw), ""))
		for _, r := range refused {
			if loc := regexp.MustCompile(r.pattern).FindStringIndex(sql); loc != nil {
				t.Errorf("%s uses %q (%s), which CockroachDB does not accept", name, sql[loc[0]:loc[1]], r.why)
			}
		}
	}
}

// The check itself: each refused feature is caught.
func TestRefusedFeaturesAreCaught(t *testing.T) {
	for _, sample := range []string{
		"CREATE TABLE t (id BIGSERIAL PRIMARY KEY)", "SELECT nextval('s')", "SELECT pg_advisory_lock(1)",
		"CREATE INDEX i ON t USING BRIN (ts)", "CREATE TABLE t2 PARTITION OF t FOR VALUES FROM (1) TO (2)",
		"ALTER TABLE t SET (autovacuum_vacuum_scale_factor = 0.01)", "CREATE UNLOGGED TABLE u (x INT)",
		"ALTER TABLE open_holds SET (autovacuum_vacuum_threshold=1000, autovacuum_vacuum_cost_delay=0)",
		"ALTER TABLE t ADD CONSTRAINT c UNIQUE (x) DEFERRABLE", "CREATE EXTENSION pgcrypto",
	} {
		caught := false
		for _, r := range refused {
			if regexp.MustCompile(r.pattern).MatchString(strings.ToLower(sample)) {
				caught = true
			}
		}
		if !caught {
			t.Errorf("%q is not caught", sample)
		}
	}
}
